"""Wall-clock time per edit: median and spread after warm-up, synchronising the GPU around each call; the
hardware it ran on."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from l2sae.utils.precision import CPUINFO, cpu_flags


@dataclass(frozen=True)
class TimingStats:
    """Seconds per edit over ``samples`` measurements: median, extremes and quartiles (IQR = q3 - q1)."""

    median_s: float
    min_s: float
    max_s: float
    q1_s: float
    q3_s: float
    samples: int

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> TimingStats:
        if len(seconds) == 0:
            raise ValueError("no timing samples")
        values = np.asarray(seconds, dtype=np.float64)
        q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        return cls(float(median), float(values.min()), float(values.max()), float(q1), float(q3), len(values))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_seconds(
    calls: Iterable[Callable[[], object]], device: torch.device | str = "cpu", warmup: int = 3
) -> list[float]:
    """Time each zero-argument call once, after running the first one ``warmup`` extra times untimed.

    Each call is one edit (say, one image at batch size 1); CUDA work is synchronised before the
    clock starts and before it stops, so the time covers the whole computation.
    """
    device = torch.device(device)
    seconds = []
    for index, call in enumerate(calls):
        if index == 0:
            for _ in range(warmup):
                call()
        _synchronize(device)
        start = time.perf_counter()
        call()
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides CPU speed and bf16 support


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` says."""
    if CPUINFO.is_file():
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown CPU"


def hardware_description(device: torch.device | str) -> str:
    """The hardware timings ran on: the GPU's name, or the CPU's model, threads, vector flags and load."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    flags = cpu_flags()
    shown = " ".join(flag for flag in CPU_FLAGS if flag in flags) or "none of " + "/".join(CPU_FLAGS)
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu_model()}, {torch.get_num_threads()} threads, flags: {shown}{load}"
