"""Which floating-point precision the editor runs in: bfloat16 only where the hardware runs it natively.

On CPUs without bf16 dot-product instructions oneDNN emulates bfloat16 convolutions, far slower than
float32 (measured: README, Performance; ``python bench/edit_latency.py``), so ``"auto"`` picks bf16 only on
CPUs with AVX-512 bf16 or AMX (and on CUDA devices with bf16 units).

The setting's way: ``precision`` in ``conf/editor/default.yaml`` -> :data:`Precision` (OmegaConf checks the
name where the config is composed; :func:`resolve_precision` checks it for Python callers) -> the editor
(``L2SAEEditor(precision=...)`` calls :func:`resolve_precision` once and runs in ``PRECISION_DTYPES[...]``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from l2sae.utils.choices import Choice

log = logging.getLogger(__name__)

# the ``precision`` setting: auto (bf16 where the hardware runs it natively, else 32) | 32 | bf16
Precision = Choice("Precision", {"auto": "auto", "32": "32", "bf16": "bf16"})
PRECISION_DTYPES: dict[str, torch.dtype] = {Precision["32"]: torch.float32, Precision.bf16: torch.bfloat16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
EMULATED_BF16_REASON = "emulated bf16 is far slower than float32 (README, Performance); use precision=auto or 32"
_warned: set[str] = set()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (an empty set where it cannot be read)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def onednn_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions on this CPU (natively, or emulated on plain AVX-512)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` runs bfloat16 natively, and why (a short sentence).

    CPU: oneDNN must support bf16 (it says no under ``ONEDNN_MAX_CPU_ISA=AVX2``) AND the CPU must have
    bf16 dot-product instructions (``avx512_bf16`` or ``amx_bf16``): oneDNN also says yes on plain
    AVX-512 CPUs, where it emulates bf16. CUDA: ``torch.cuda.is_bf16_supported`` without emulation.
    """
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
        return supported, f"CUDA device {'has' if supported else 'has no'} native bf16 support"
    if device.type != "cpu":
        return False, f"no bf16 check for {device.type} devices"
    onednn = onednn_bf16()
    flags = sorted(set(CPU_BF16_FLAGS) & cpu_flags())
    if onednn and flags:
        return True, f"CPU has {'/'.join(flags)} and oneDNN runs bf16"
    if not onednn:
        return False, "oneDNN does not run bf16 on this CPU (or ONEDNN_MAX_CPU_ISA caps it)"
    return False, f"CPU has none of {', '.join(CPU_BF16_FLAGS)}"


def resolve_precision(precision: str | int, device: torch.device | str) -> Precision:
    """``"auto"`` -> ``"bf16"`` where ``device`` runs it natively, else ``"32"``; others pass through.

    An explicit ``"bf16"`` on hardware without it warns once. The choice is logged. Raises ConfigError
    (key ``precision``) for anything but auto, 32 or bf16.
    """
    precision = Precision.parse(precision, "precision")
    if precision == "32":
        return precision
    native, reason = native_bf16(device)
    if precision == "auto":
        chosen = Precision.bf16 if native else Precision["32"]
        log.info("precision=auto -> %s on %s (%s)", chosen, torch.device(device), reason)
        return chosen
    if not native and reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"precision=bf16: {reason}; {EMULATED_BF16_REASON}", RuntimeWarning, stacklevel=2)
    return precision
