"""What the benchmark scripts share: the machine's description, FLOP counts, PSNR, tables and JSON.

Timing itself is :mod:`l2sae.evaluation.timing` (median, min, max after warm-up), so the benchmarks
and the evaluation's timing report measure the same way.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# the SAE preset benchmarked at each image side (64 px: the tiny preset, for smoke runs)
PRESET_FOR_SIZE = {64: "tiny", 256: "ffhq256", 512: "ffhq512"}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_matrix_features() -> list[str]:
    """The CPU's vector flags that decide speed (avx2, avx512f, avx512_bf16, amx_bf16, amx_tile) present here."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def machine_info(device: torch.device) -> dict:
    """Who measured: CPU (or GPU) model, threads, torch version, load average at the time."""
    info = {
        "cpu_model": cpu_model(),
        "cpu_features": cpu_matrix_features(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
        "device": str(device),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        info["gpu_model"] = torch.cuda.get_device_name(device)
    return info


def machine_line(machine: dict) -> str:
    """One line naming the CPU, its vector flags, what torch and oneDNN use of them, threads and load now."""
    limits = [f"{key}={machine[key]}" for key in ("aten_cpu_capability", "onednn_max_cpu_isa") if machine.get(key)]
    return (
        f"{machine['cpu_model']} (flags: {' '.join(machine['cpu_features']) or 'no avx2/avx512/amx'}; torch kernels "
        f"{machine['cpu_capability']}{'; restricted: ' + ', '.join(limits) if limits else ''}), "
        f"{machine['torch_threads']} torch threads, torch {machine['torch_version']}, device {machine['device']}, "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


def cpu_pressure() -> tuple[float, int] | None:
    """Linux pressure stall information: (% of the last 10 s in which some task waited for a CPU,
    cumulative waiting time in µs), or None where /proc/pressure/cpu is missing."""
    try:
        fields = dict(item.split("=") for item in Path("/proc/pressure/cpu").read_text().split()[1:5])
    except (OSError, ValueError):
        return None
    return float(fields["avg10"]), int(fields["total"])


class StallMeter:
    """How busy the machine was while a block ran: ``percent`` of its wall time in which some task waited
    for a CPU (0 on an otherwise idle machine when torch uses at most one thread per core; None when
    unknown). Other jobs running at the same time show up here and inflate timings."""

    def __enter__(self) -> StallMeter:
        self.start, self.pressure = time.perf_counter(), cpu_pressure()
        self.percent = None
        return self

    def __exit__(self, *exc) -> None:
        end = cpu_pressure()
        if self.pressure is not None and end is not None:
            wall_us = (time.perf_counter() - self.start) * 1e6
            self.percent = round(100.0 * (end[1] - self.pressure[1]) / wall_us, 1)


def wait_until_quiet(max_seconds: float, threshold: float = 10.0) -> float | None:
    """Sleep (at most ``max_seconds``) until the 10 s CPU pressure drops below ``threshold`` %; return it."""
    deadline = time.monotonic() + max_seconds
    pressure = cpu_pressure()
    while pressure is not None and pressure[0] >= threshold and time.monotonic() < deadline:
        time.sleep(2.0)
        pressure = cpu_pressure()
    return None if pressure is None else pressure[0]


def count_flops(call: Callable[[], object]) -> int:
    """Floating-point operations of one ``call()`` (multiply-add = 2), by torch.utils.flop_counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    return int(counter.get_total_flops())


def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float | None = 2.0) -> float:
    """Peak signal-to-noise ratio in dB of ``images`` against ``reference`` (same shape).

    data_range: 2 for images in [-1, 1]; None uses the reference's own peak-to-peak range, which does not
    flatter outputs that span only part of [-1, 1] (random weights decode to nearly flat grey images).
    """
    if data_range is None:
        data_range = (reference.max() - reference.min()).item()
    mse = torch.mean((images.float() - reference.float()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table; ``columns`` are (key in the row, header). Floats print with 3 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "inf" if math.isinf(value) else f"{value:.3g}"
        return "-" if value is None else str(value)

    cells = [[header for _, header in columns]] + [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_results(name: str, payload: dict, results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` as ``<results_dir>/<name>-<UTC time>.json`` atomically; returns the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{name}-{stamp}.json"
    with tempfile.NamedTemporaryFile("w", dir=results_dir, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2, default=str)
    os.replace(handle.name, path)
    return path
