"""Wall-clock time per edit: median and spread after warm-up, synchronising the GPU around each call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch


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
