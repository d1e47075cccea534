"""Learning curves of a run folder (the CSV logger's ``csv/version_*/metrics.csv``) and their plot.

matplotlib (the Agg backend) is imported inside :func:`plot_curves` only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from l2sae.utils.files import atomic_path

Curve = list[tuple[int, float]]  # (step, value)


def learning_curve(run_dir: str | Path, metric: str = "val/mask_miou") -> Curve:
    """(step, value) of ``metric`` from the last CSV log of ``run_dir`` that has it (the last stage's; its
    column may carry the stage as prefix, ``smpn-val/mask_miou``). Empty when no log has it."""
    logs = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda path: int(path.parent.name[8:]))
    for log in reversed(logs):
        rows = list(csv.DictReader(io.StringIO(log.read_text())))
        column = next((name for name in (rows[0] if rows else {}) if name.split("-")[-1] == metric), None)
        if column:
            return [(int(row["step"]), float(row[column])) for row in rows if row.get(column)]
    return []


def figure_to_png(figure, path: str | Path) -> None:
    """Save a matplotlib figure as a PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, ylabel: str) -> None:
    """One line per labelled curve (value against step) into the PNG ``path``."""
    figure, axes = pyplot().subplots(figsize=(6, 4))
    for label, curve in curves.items():
        if curve:
            steps, values = zip(*curve)
            axes.plot(steps, values, marker="o", label=label)
    axes.set_xlabel("step (optimiser steps of the last stage)")
    axes.set_ylabel(ylabel)
    if any(curves.values()):
        axes.legend(fontsize="small")
    figure_to_png(figure, path)
