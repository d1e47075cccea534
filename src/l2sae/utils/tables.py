"""Markdown tables, as the reports (evaluation, sweeps, structure swaps), the end of a training run and the notebook
print them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``header`` and one line per row of cells (already formatted) as a Markdown table, without a final newline."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def metrics_summary(metrics: Mapping[str, float]) -> str:
    """``metrics`` for the terminal: the mask IoU per region (and the cheap masks' matte IoU against the full masks,
    where a mask head was distilled) as a Markdown table ending with their means, then every other metric on a line.
    """
    rest = dict(metrics)
    rois = [key.removeprefix("val/iou_") for key in metrics if key.startswith("val/iou_")]
    lines = []
    if rois:
        columns = [
            (title, prefix, mean)
            for title, prefix, mean in (
                ("mask IoU", "val/iou_", "val/mask_miou"),
                ("cheap-mask matte IoU", "val/fast_matte_iou_", "val/fast_matte_iou"),
            )
            if prefix + rois[0] in metrics
        ]

        def cells(name: str, keys: list[str]) -> list[str]:
            return [name, *(f"{rest.pop(key):.3f}" if key in rest else "n/a" for key in keys)]

        rows = [cells(roi, [prefix + roi for _, prefix, _ in columns]) for roi in rois]
        rows.append(cells("mean", [mean for _, _, mean in columns]))
        lines.append(markdown_table(["region", *(title for title, _, _ in columns)], rows))
    if rest:
        lines.append(" · ".join(f"{key} {value:.4g}" for key, value in rest.items()))
    return "\n".join(lines)
