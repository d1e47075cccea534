"""The evaluation report: Markdown (the paper's Table 1, then one table per region), CSV and JSON.

A result row holds the metrics of one method on one region (or ``"all"`` regions pooled):
``fid``/``fid_images``, ``lpips``/``lpips_pairs``, ``recon_lpips``/``recon_pairs``,
``leakage_outside``/``leakage_inside``/``leakage_ratio``/``leakage_pairs``, ``mask_iou``/``mask_iou_images``
and ``time_median_s``, ``time_min_s``, ``time_max_s``, ``time_q1_s``, ``time_q3_s``, ``time_samples``.
Missing values are None (empty in the CSV, "–" in Markdown); counts say how many images or pairs
each number used. A metric that was not computed (``skipped``: FID or LPIPS without weights, or
disabled) shows "n/a" in its columns (null in the JSON), and the report's notes say why.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from l2sae.utils.files import atomic_write_json, atomic_write_text

COLUMNS: tuple[str, ...] = (
    "method",
    "region",
    "fid",
    "fid_images",
    "lpips",
    "lpips_pairs",
    "recon_lpips",
    "recon_pairs",
    "leakage_outside",
    "leakage_inside",
    "leakage_ratio",
    "leakage_pairs",
    "mask_iou",
    "mask_iou_images",
    "time_median_s",
    "time_min_s",
    "time_max_s",
    "time_q1_s",
    "time_q3_s",
    "time_samples",
)
REPORT_FILES = {"markdown": "evaluation.md", "csv": "evaluation.csv", "json": "evaluation.json"}
ALL_REGIONS = "all"
METRIC_COLUMNS = {"fid": ("fid", "fid_images"), "lpips": ("lpips", "lpips_pairs", "recon_lpips", "recon_pairs")}
NOT_COMPUTED = "n/a"


def _not_computed(skipped: Iterable[str]) -> set[str]:
    """The columns of the skipped metrics (names of :data:`METRIC_COLUMNS`)."""
    return {column for metric in skipped for column in METRIC_COLUMNS[metric]}


def _number(value: float | None, digits: int, count: int | None = None) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text if count is None else f"{text} ({count})"


def _time(row: Mapping) -> str:
    if row["time_median_s"] is None:
        return "–"
    text = f"{row['time_median_s']:.4f}"
    if row["time_samples"] > 1:
        text += f" [{row['time_min_s']:.4f}–{row['time_max_s']:.4f}]"
    return f"{text} ({row['time_samples']})"


def _table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def markdown_report(
    rows: Sequence[Mapping], settings: Mapping, baselines: Mapping[str, Mapping], skipped: Mapping[str, str]
) -> str:
    """The report as Markdown: settings, notes on skipped metrics, Table 1 (all regions), one table per
    region, baseline file notes."""
    regions = list(dict.fromkeys(row["region"] for row in rows if row["region"] != ALL_REGIONS))
    not_computed = _not_computed(skipped)

    def metric(row: Mapping, column: str, digits: int, count_column: str | None = None) -> str:
        if column in not_computed:
            return NOT_COMPUTED
        return _number(row[column], digits, None if count_column is None else row[count_column])

    parts = ["# L2SAE evaluation", ""]
    parts += [f"- {key}: {value}" for key, value in settings.items()]
    if skipped:
        parts += ["", "## Notes", "", *(f"- {note}" for note in skipped.values())]
    parts += [
        "",
        (
            "Numbers in parentheses: images or pairs the value was computed from. Time per edit: median seconds "
            "[min–max] over the timed edits."
        ),
        "",
        f"## Table 1: all regions ({', '.join(regions)})",
        "",
        _table(
            ["Method", "FID ↓", "LPIPS ↓", "Time per edit (s) ↓"],
            (
                [
                    row["method"],
                    metric(row, "fid", 2, "fid_images"),
                    metric(row, "lpips", 4, "lpips_pairs"),
                    _time(row),
                ]
                for row in rows
                if row["region"] == ALL_REGIONS
            ),
        ),
    ]
    for region in regions:
        parts += [
            "",
            f"## {region}",
            "",
            _table(
                [
                    "Method",
                    "FID ↓",
                    "LPIPS ↓",
                    "Change outside ↓",
                    "Change inside",
                    "Outside / inside ↓",
                    "Mask IoU ↑",
                    "Time per edit (s)",
                ],
                (
                    [
                        row["method"],
                        metric(row, "fid", 2, "fid_images"),
                        metric(row, "lpips", 4, "lpips_pairs"),
                        metric(row, "leakage_outside", 4, "leakage_pairs"),
                        metric(row, "leakage_inside", 4),
                        metric(row, "leakage_ratio", 3),
                        metric(row, "mask_iou", 3, "mask_iou_images"),
                        _time(row),
                    ]
                    for row in rows
                    if row["region"] == region
                ),
            ),
        ]
    recon = [row for row in rows if row["region"] == ALL_REGIONS and row["recon_lpips"] is not None]
    if recon:
        parts += ["", "## Reconstruction (input vs. the method's inversion)", ""]
        parts.append(
            _table(
                ["Method", "LPIPS ↓"],
                ([row["method"], metric(row, "recon_lpips", 4, "recon_pairs")] for row in recon),
            )
        )
    for name, summary in baselines.items():
        parts += [
            "",
            f"## Baseline files: {name}",
            "",
            f"Folder: `{summary['folder']}`; timing: {summary['timing_file']}.",
        ]
        for what in ("missing", "missing_recons", "extra", "ignored"):
            if summary[what]:
                examples = ", ".join(summary[f"{what}_examples"])
                more = ", ..." if summary[what] > len(summary[f"{what}_examples"]) else ""
                parts.append(f"- {what.replace('_', ' ')}: {summary[what]} ({examples}{more})")
    return "\n".join(parts) + "\n"


def _complete_rows(rows: Sequence[Mapping], skipped: Iterable[str], not_computed_value: str | None) -> list[dict]:
    """The rows with exactly the :data:`COLUMNS`, the skipped metrics' columns set to ``not_computed_value``."""
    not_computed = _not_computed(skipped)
    return [
        {column: not_computed_value if column in not_computed else row.get(column) for column in COLUMNS}
        for row in rows
    ]


def csv_report(rows: Sequence[Mapping], skipped: Iterable[str]) -> str:
    """The rows as CSV: a None is an empty cell, a skipped metric's columns read "n/a"."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_complete_rows(rows, skipped, NOT_COMPUTED))
    return buffer.getvalue()


def write_report(
    out_dir: str | Path,
    rows: Sequence[Mapping],
    settings: Mapping,
    baselines: Mapping[str, Mapping],
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write evaluation.md, evaluation.csv and evaluation.json into ``out_dir`` atomically; return their paths.

    ``skipped`` maps each metric not computed ("fid", "lpips") to the note saying why (the JSON's ``notes``).
    """
    skipped = dict(skipped or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in REPORT_FILES.items()}
    atomic_write_text(paths["markdown"], markdown_report(rows, settings, baselines, skipped))
    atomic_write_text(paths["csv"], csv_report(rows, skipped))
    rows = _complete_rows(rows, skipped, None)
    atomic_write_json(
        paths["json"], {"settings": dict(settings), "notes": skipped, "rows": rows, "baselines": dict(baselines)}
    )
    return paths


def log_tables(loggers: Iterable, rows: Sequence[Mapping]) -> None:
    """Send the rows as W&B tables (Table 1 and all regions) to every logger that has ``log_table``."""
    columns = list(COLUMNS)
    data = [[row.get(column) for column in columns] for row in rows]
    table1 = [line for line in data if line[1] == ALL_REGIONS]
    for logger in loggers:
        if hasattr(logger, "log_table"):
            logger.log_table(key="evaluation/table1", columns=columns, data=table1)
            logger.log_table(key="evaluation/regions", columns=columns, data=data)
