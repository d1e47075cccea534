"""The evaluation report: Markdown (the protocol, the paper's Table 1 extended, one table per region), CSV, JSON.

A result row holds the metrics of one method on one region (or ``"all"`` regions pooled): the paper's
``fid``/``fid_images``, ``lpips``/``lpips_pairs`` and ``time_median_s``, ``time_min_s``, ``time_max_s``,
``time_q1_s``, ``time_q3_s``, ``time_samples``; then ``recon_lpips``/``recon_pairs``,
``leakage_outside``/``leakage_inside``/``leakage_ratio``/``leakage_pairs``, ``mask_iou``/``mask_iou_images``;
and the metrics beyond the paper (:data:`EXTENDED_COLUMNS`): KID, preservation outside the region and in
its boundary band, identity, diversity and the distance to a swap's reference. Markdown tables show the
paper's columns first, then the new ones.

Missing values are None (empty in the CSV, "–" in Markdown); counts say how many images or pairs
each number used. A metric that was not computed (``skipped``: FID/KID or LPIPS without weights, identity
without dlib, or disabled) shows "n/a" in its columns (null in the JSON), and the report's notes say why.
A PSNR of identical pixels is infinite: "inf" in the CSV and the JSON, "∞" in Markdown.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from l2sae.utils.files import atomic_write_json, atomic_write_text
from l2sae.utils.tables import markdown_table

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
EXTENDED_COLUMNS: tuple[str, ...] = (
    "kid",
    "kid_std",
    "kid_subset_size",
    "psnr_outside",
    "ssim_outside",
    "lpips_outside",
    "psnr_band",
    "ssim_band",
    "lpips_band",
    "preservation_pairs",
    "identity_similarity",
    "identity_distance",
    "identity_match",
    "identity_pairs",
    "identity_missed_inputs",
    "identity_missed_edits",
    "diversity",
    "diversity_images",
    "diversity_seeds",
    "swap_lpips",
    "swap_lpips_input",
    "swap_pairs",
)
COLUMNS += EXTENDED_COLUMNS
REPORT_FILES = {"markdown": "evaluation.md", "csv": "evaluation.csv", "json": "evaluation.json"}
ALL_REGIONS = "all"
METRIC_COLUMNS = {  # the columns of each metric that needs pretrained weights or dlib
    "fid": ("fid", "fid_images", "kid", "kid_std", "kid_subset_size"),
    "lpips": (
        "lpips",
        "lpips_pairs",
        "recon_lpips",
        "recon_pairs",
        "lpips_outside",
        "lpips_band",
        *(column for column in EXTENDED_COLUMNS if column.startswith(("diversity", "swap_"))),
    ),
    "identity": tuple(column for column in EXTENDED_COLUMNS if column.startswith("identity_")),
}
NOT_COMPUTED = "n/a"


def _not_computed(skipped: Iterable[str]) -> set[str]:
    """The columns of the skipped metrics (names of :data:`METRIC_COLUMNS`)."""
    return {column for metric in skipped for column in METRIC_COLUMNS[metric]}


def _number(value: float | None, digits: int, count: int | None = None) -> str:
    if value is None:
        return "–"
    text = "∞" if value == math.inf else f"{value:.{digits}f}"
    return text if count is None else f"{text} ({count})"


def _time(row: Mapping) -> str:
    if row["time_median_s"] is None:
        return "–"
    text = f"{row['time_median_s']:.4f}"
    if row["time_samples"] > 1:
        text += f" [{row['time_min_s']:.4f}–{row['time_max_s']:.4f}]"
    return f"{text} ({row['time_samples']})"


def _kid(row: Mapping) -> str:
    if row.get("kid") is None:
        return "–"
    return f"{row['kid']:.4f} ± {row['kid_std']:.4f} ({row['fid_images']}; subsets of {row['kid_subset_size']})"


def _identity(row: Mapping) -> str:
    inputs, edits = row.get("identity_missed_inputs") or 0, row.get("identity_missed_edits") or 0
    if not row.get("identity_pairs") and not inputs and not edits:
        return "–"
    value = _number(row["identity_similarity"], 3)
    return f"{value} ({row['identity_pairs']}; no face: {inputs} inputs, {edits} edits)"


def _swap(row: Mapping) -> str:
    if row.get("swap_lpips") is None:
        return "–"
    return f"{row['swap_lpips']:.4f} (input {row['swap_lpips_input']:.4f}; {row['swap_pairs']})"


Cell = Callable[[Mapping], str]

# Markdown columns beyond the paper's (header, the metric that skips it or None, the cell); see the README.
LEGEND = (
    "KID: mean ± std over random subsets (edits; subset size). PSNR/SSIM/LPIPS out: input vs. edit over the "
    "pixels outside the region's ground-truth mask; band: over the region dilated by the band width minus the "
    "region (SSIM and LPIPS maps averaged over those pixels). ID similarity: cosine similarity of dlib's face "
    "descriptors of input and edit (pairs scored; pairs where dlib found no face in the input / the edit); same "
    "person: share of scored pairs closer than 0.6. Diversity: mean pairwise "
    "LPIPS inside the region between edits with different seeds. LPIPS to reference: a style swap's region vs. "
    "the reference's region (both masks), the input's distance in parentheses."
)


def _extended_columns(number: Callable[..., str]) -> list[tuple[str, str | None, Cell]]:
    return [
        ("KID ↓", "fid", _kid),
        ("PSNR out (dB) ↑", None, lambda row: number(row, "psnr_outside", 2, "preservation_pairs")),
        ("SSIM out ↑", None, lambda row: number(row, "ssim_outside", 4)),
        ("LPIPS out ↓", None, lambda row: number(row, "lpips_outside", 4)),
        ("PSNR band (dB) ↑", None, lambda row: number(row, "psnr_band", 2)),
        ("SSIM band ↑", None, lambda row: number(row, "ssim_band", 4)),
        ("LPIPS band ↓", None, lambda row: number(row, "lpips_band", 4)),
        ("ID similarity ↑", "identity", _identity),
        ("Same person ↑", None, lambda row: number(row, "identity_match", 3)),
        ("Diversity ↑", "lpips", lambda row: number(row, "diversity", 4, "diversity_images")),
        ("LPIPS to reference ↓", "lpips", _swap),
    ]


def markdown_report(
    rows: Sequence[Mapping], settings: Mapping, baselines: Mapping[str, Mapping], skipped: Mapping[str, str]
) -> str:
    """The report as Markdown: the protocol (``settings``), notes on skipped metrics, Table 1 (all regions),
    one table per region, baseline file notes."""
    regions = list(dict.fromkeys(row["region"] for row in rows if row["region"] != ALL_REGIONS))
    not_computed = _not_computed(skipped)

    def metric(row: Mapping, column: str, digits: int, count_column: str | None = None) -> str:
        if column in not_computed:
            return NOT_COMPUTED
        return _number(row[column], digits, None if count_column is None else row[count_column])

    extended = [
        (header, (lambda row: NOT_COMPUTED) if skips in skipped else cell)
        for header, skips, cell in _extended_columns(metric)
    ]
    paper = [
        ("FID ↓", lambda row: metric(row, "fid", 2, "fid_images")),
        ("LPIPS ↓", lambda row: metric(row, "lpips", 4, "lpips_pairs")),
    ]
    per_region = [
        ("Change outside ↓", lambda row: metric(row, "leakage_outside", 4, "leakage_pairs")),
        ("Change inside", lambda row: metric(row, "leakage_inside", 4)),
        ("Outside / inside ↓", lambda row: metric(row, "leakage_ratio", 3)),
        ("Mask IoU ↑", lambda row: metric(row, "mask_iou", 3, "mask_iou_images")),
    ]
    table1 = [*paper, ("Time per edit (s) ↓", _time), *extended]
    region_table = [*paper, *per_region, ("Time per edit (s)", _time), *extended]

    def table(columns: Sequence[tuple[str, Cell]], region: str) -> str:
        lines = ([row["method"], *(cell(row) for _, cell in columns)] for row in rows if row["region"] == region)
        return markdown_table(["Method", *(header for header, _ in columns)], lines)

    parts = ["# L2SAE evaluation", "", "## Protocol", ""]
    parts += [f"- {key}: {value}" for key, value in settings.items()]
    if skipped:
        parts += ["", "## Notes", "", *(f"- {note}" for note in skipped.values())]
    parts += [
        "",
        (
            "Numbers in parentheses: images or pairs the value was computed from. Time per edit: median seconds "
            "[min–max] over the timed edits. The paper's Table 1 columns come first. " + LEGEND
        ),
        "",
        f"## Table 1: all regions ({', '.join(regions)})",
        "",
        table(table1, ALL_REGIONS),
    ]
    for region in regions:
        parts += ["", f"## {region}", "", table(region_table, region)]
    recon = [row for row in rows if row["region"] == ALL_REGIONS and row["recon_lpips"] is not None]
    if recon:
        parts += ["", "## Reconstruction (input vs. the method's inversion)", ""]
        parts.append(
            markdown_table(
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

    ``skipped`` maps each metric not computed (keys of :data:`METRIC_COLUMNS`) to the note saying why (the
    JSON's ``notes``).
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
