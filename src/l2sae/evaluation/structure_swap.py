"""Structure swaps scored against ground truth drawn from the synthetic faces (:mod:`l2sae.data.synthswap`).

For every design and region, over a fixed set of (face, donor) pairs:

- ``psnr``: the swap against the truth inside the union of the face's and the truth's region masks (dB, from
  the squared error pooled over all pairs' masked pixels, on the [0, 1] scale; inf when equal);
- ``lpips``: LPIPS' spatial map of swap against truth, averaged over that union (None without a model);
- ``iou``: the region's mask that the SMPN reads from the swap against the truth's region mask
  (intersections and unions pooled over the pairs);
- ``psnr_outside``: the swap against the input where the true swap changes nothing (outside the region's
  shapes in both, antialiased rims included): how well the rest of the face is kept.

Region ``mean`` averages a design's regions, each counting once (pooling their pixels would let hair,
twenty times a nose's area, decide alone).

The row ``input`` scores the unchanged input as a swap: a design worth its name beats it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lpips
import numpy as np
import torch
from torch import Tensor

from l2sae.data.synthswap import StructureSwapCase, check_roi, draw_swaps, fixed_pairs
from l2sae.editing import L2SAEEditor
from l2sae.editing.swap_designs import SwapDesignName
from l2sae.evaluation.masked import MaskedMean, lpips_map, psnr, spatial_lpips, squared_error_map
from l2sae.evaluation.weights import check_enabled
from l2sae.utils.errors import ConfigError
from l2sae.utils.files import atomic_write_bytes, atomic_write_json
from l2sae.utils.tables import markdown_table

UNCHANGED = "input"  # the row that scores the unchanged input
MEAN_OF_REGIONS = "mean"
COLUMNS = ("psnr", "lpips", "iou", "psnr_outside", "swaps")


def to_images(arrays: Sequence[np.ndarray]) -> Tensor:
    """size x size x 3 arrays in [0, 1] -> B x 3 x H x W in [-1, 1], rounded to 8 bits as written images are."""
    stacked = np.round(np.stack(arrays) * 255.0) / 255.0
    return torch.from_numpy(stacked).float().permute(0, 3, 1, 2) * 2.0 - 1.0


def to_masks(arrays: Sequence[np.ndarray]) -> Tensor:
    """size x size bool arrays -> B x 1 x H x W float in {0, 1}."""
    return torch.from_numpy(np.stack(arrays)).float()[:, None]


class _Sums:
    """One (design, region)'s sums over its swaps: masked means inside the union (squared error, LPIPS) and
    outside (squared error), mask intersections and unions."""

    def __init__(self) -> None:
        self.inside, self.outside = MaskedMean(), MaskedMean()
        self.intersection = self.union = 0.0
        self.swaps = 0

    def row(self) -> dict:
        return {
            "psnr": psnr(self.inside.mean("squared_error")),
            "lpips": self.inside.mean("lpips"),
            "iou": self.intersection / self.union if self.union else None,
            "psnr_outside": psnr(self.outside.mean("squared_error")),
            "swaps": self.swaps,
        }


class StructureSwapScores:
    """Accumulates the scores of swaps by (design, region); :meth:`rows` gives them.

    lpips_model: from :func:`l2sae.evaluation.lpips_metric.build_lpips` (None: no LPIPS column).
    """

    def __init__(self, lpips_model: lpips.LPIPS | None = None) -> None:
        self.spatial_lpips = None if lpips_model is None else spatial_lpips(lpips_model)
        self.sums: dict[tuple[str, str], _Sums] = {}

    @torch.no_grad()
    def add(self, design: str, roi: str, swaps: Tensor, truth: SwapTruth, predicted: Tensor) -> None:
        """Swaps B x 3 x H x W in [-1, 1] of ``truth``'s pairs; ``predicted``: the region's masks read from
        the swaps, B x 1 x H x W in [0, 1] (thresholded at 0.5)."""
        sums = self.sums.setdefault((design, roi), _Sums())
        inside = {"squared_error": squared_error_map(swaps, truth.truths)}
        if self.spatial_lpips is not None:
            inside["lpips"] = lpips_map(self.spatial_lpips, swaps, truth.truths)
        sums.inside.add(inside, truth.union)
        sums.outside.add({"squared_error": squared_error_map(swaps, truth.inputs)}, truth.unchanged)
        predicted, target = predicted > 0.5, truth.truth_masks > 0.5
        sums.intersection += float((predicted & target).sum())
        sums.union += float((predicted | target).sum())
        sums.swaps += swaps.shape[0]

    def rows(self) -> list[dict]:
        """One row per (design, region) in the order first added, then per design the region ``"mean"``: the
        mean of its regions' values (each region counts once, whatever its size; swaps: their total)."""
        rows = [{"design": design, "region": roi, **sums.row()} for (design, roi), sums in self.sums.items()]
        means = []
        for design in dict.fromkeys(row["design"] for row in rows):
            own = [row for row in rows if row["design"] == design]
            mean = {"design": design, "region": MEAN_OF_REGIONS, "swaps": sum(row["swaps"] for row in own)}
            for name in COLUMNS[:-1]:
                values = [row[name] for row in own]
                mean[name] = None if None in values else sum(values) / len(values)
            means.append(mean)
        return rows + means


@dataclass(frozen=True)
class SwapTruth:
    """A batch of ground-truth cases of one region as tensors on one device: inputs, donors, truths
    (B x 3 x H x W in [-1, 1]); union (the face's or the truth's region), unchanged (where the truth is the
    input), truth_masks (the truth's region): B x 1 x H x W in {0, 1}."""

    inputs: Tensor
    donors: Tensor
    truths: Tensor
    union: Tensor
    unchanged: Tensor
    truth_masks: Tensor

    @classmethod
    def of(cls, cases: Sequence[StructureSwapCase], device: torch.device | str = "cpu") -> SwapTruth:
        tensors = (
            to_images([case.face for case in cases]),
            to_images([case.donor for case in cases]),
            to_images([case.truth for case in cases]),
            to_masks([case.face_mask | case.truth_mask for case in cases]),
            to_masks([~case.changed for case in cases]),
            to_masks([case.truth_mask for case in cases]),
        )
        return cls(*(tensor.to(device) for tensor in tensors))


def score_designs(
    editor: L2SAEEditor,
    cases: Sequence[StructureSwapCase],
    designs: Sequence[str],
    lpips_model: lpips.LPIPS | None = None,
    batch_size: int = 16,
) -> list[dict]:
    """Swap every case's region with each design (and score the unchanged input first); the rows of
    :class:`StructureSwapScores`. The cases must be drawn at ``editor.image_size``."""
    scores = StructureSwapScores(lpips_model)
    by_roi: dict[str, list[StructureSwapCase]] = {}
    for case in cases:
        by_roi.setdefault(case.roi, []).append(case)
    for roi, roi_cases in by_roi.items():
        for start in range(0, len(roi_cases), batch_size):
            truth = SwapTruth.of(roi_cases[start : start + batch_size], editor.device)
            faces, donors = editor.encode(truth.inputs, rois=[roi]), editor.encode(truth.donors, rois=[roi])
            scores.add(UNCHANGED, roi, truth.inputs, truth, editor.masks(faces, roi))
            for design in designs:
                swaps = editor.swap_structure(faces, donors, roi, design=design).images
                scores.add(design, roi, swaps, truth, editor.masks(swaps, roi))
    return scores.rows()


@dataclass(frozen=True)
class StructureSwapPlan:
    """The checked ``structure_swap`` settings of an evaluation."""

    pairs: int
    rois: tuple[str, ...]
    designs: tuple[str, ...]
    batch_size: int


def check_settings(
    settings: Mapping, synthetic: Mapping | None, key: str = "structure_swap"
) -> StructureSwapPlan | None:
    """The plan of ``settings`` (keys enabled, pairs, rois, designs, batch_size), or None when the swaps are
    off: ``enabled: auto`` scores them where the data is drawn (``synthetic`` given), ``true`` requires it."""
    enabled = check_enabled(settings["enabled"], f"{key}.enabled")
    if enabled is True and synthetic is None:
        raise ConfigError(
            f"{key}.enabled: structure swaps need ground truth from synthetic faces (data=synthfaces with "
            "data.synthetic set); use enabled: auto or false for other data"
        )
    if enabled is False or synthetic is None:
        return None
    for name in ("pairs", "batch_size"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}.{name}: expected a positive integer, got {value!r}")
    rois = tuple(check_roi(roi, f"{key}.rois") for roi in settings["rois"])
    designs = tuple(SwapDesignName.parse(design, f"{key}.designs") for design in settings["designs"])
    if not rois or not designs:
        raise ConfigError(f"{key}: list at least one region (rois) and one design (designs)")
    return StructureSwapPlan(settings["pairs"], rois, designs, settings["batch_size"])


def swap_cases(plan: StructureSwapPlan, datamodule, image_size: int) -> list[StructureSwapCase]:
    """The fixed ground-truth set of a synthetic datamodule's test split (set up): face 2k of the split takes
    face 2k + 1's region for k < ``plan.pairs`` (fewer where the split is smaller), drawn at ``image_size``
    with the set's seed and regions."""
    paths = datamodule.datasets["test"].store.paths  # image i of a synthetic set is <i>.jpg
    indices = [int(Path(path).stem) for path in paths]
    pairs = fixed_pairs(indices, min(plan.pairs, len(indices) // 2))
    return draw_swaps(datamodule.synthetic["seed"], image_size, pairs, plan.rois, datamodule.region_parts)


def evaluate(
    plan: StructureSwapPlan, editor: L2SAEEditor, datamodule, lpips_model: lpips.LPIPS | None, out_dir: str | Path
) -> tuple[list[dict], Path]:
    """Score ``plan``'s designs on the datamodule's ground-truth set and write the report into ``out_dir``;
    the rows and the report's path."""
    cases = swap_cases(plan, datamodule, editor.image_size)
    rows = score_designs(editor, cases, plan.designs, lpips_model, plan.batch_size)
    settings = {
        "ground truth": f"{len(cases) // len(plan.rois)} pairs of the test split (face 2k takes face 2k+1's region), "
        f"drawn at {editor.image_size} px from the synthetic set's seed {datamodule.synthetic['seed']}",
        "default design (editor.structure_swap)": editor.structure_swap,
        "LPIPS": "not computed (see evaluation.md's notes)" if lpips_model is None else "as in evaluation.md",
    }
    return rows, write_report(out_dir, rows, settings)


def flat_metrics(rows: Sequence[Mapping]) -> dict[str, float]:
    """``{"structure_swap/<design>/<region>/<metric>": value}`` of every number in the rows."""
    return {
        f"structure_swap/{row['design']}/{row['region']}/{name}": float(row[name])
        for row in rows
        for name in COLUMNS
        if row[name] is not None
    }


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else ("inf" if value == math.inf else f"{value:.{digits}f}")


def _table(rows: Sequence[Mapping]) -> str:
    """The rows as a Markdown table (designs x regions; n/a where not computed)."""
    header = [
        "design",
        "region",
        "PSNR in region (dB) ↑",
        "LPIPS in region ↓",
        "mask IoU ↑",
        "PSNR outside (dB) ↑",
        "swaps",
    ]
    cells = (
        [
            row["design"],
            row["region"],
            _number(row["psnr"], 2),
            _number(row["lpips"], 3),
            _number(row["iou"], 3),
            _number(row["psnr_outside"], 2),
            str(row["swaps"]),
        ]
        for row in rows
    )
    return markdown_table(header, cells) + "\n"


def write_report(out_dir: str | Path, rows: Sequence[Mapping], settings: Mapping[str, str]) -> Path:
    """Write structure_swap.md (the settings, then the table) and structure_swap.json into ``out_dir``; return
    the Markdown's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = "".join(f"- {name}: {value}\n" for name, value in settings.items())
    markdown = out_dir / "structure_swap.md"
    atomic_write_bytes(markdown, f"# Structure swaps against drawn ground truth\n\n{header}\n{_table(rows)}".encode())
    atomic_write_json(out_dir / "structure_swap.json", {"settings": dict(settings), "rows": list(rows)})
    return markdown
