"""``python evaluate.py``: score L2SAE's region edits, and baseline folders, on the evaluation images.

On the test split of ``cfg.data``, every image's regions ``rois`` are restyled by L2SAE (strength
``strength``, one edit per seed of ``seeds``); baseline folders (``baselines.<name>.dir``) add the
edits other methods made of the same images. The run folder receives evaluation.md (the paper's
Table 1, then one table per region), evaluation.csv and evaluation.json; the Markdown is printed,
and W&B receives the tables when the wandb logger is on. Every setting is checked before any work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from tqdm import tqdm

from l2sae.editing import L2SAEEditor
from l2sae.editing.run import editor_from_config
from l2sae.evaluation import structure_swap
from l2sae.evaluation.baselines import Pairing, load_image, scan_baseline
from l2sae.evaluation.fid import inception_features
from l2sae.evaluation.lpips_metric import build_lpips
from l2sae.evaluation.report import ALL_REGIONS, log_tables, write_report
from l2sae.evaluation.scoring import EditScores, to_size
from l2sae.evaluation.timing import measure_seconds
from l2sae.evaluation.weights import check_enabled, optional_metric
from l2sae.regions import ROI_NAMES
from l2sae.utils.device import resolve_device
from l2sae.utils.errors import ConfigError
from l2sae.utils.tracking import finish_wandb, instantiate_loggers

log = logging.getLogger(__name__)

OURS = "l2sae"
GLOBAL_EDIT = "sae_global"  # the SMN's edit of the whole image, before matting
METRICS_WITH_WEIGHTS = ("fid", "lpips")  # need pretrained backbones; metrics.<name>.enabled: auto | true | false


@dataclass(frozen=True)
class Plan:
    """The checked settings of an evaluation."""

    rois: tuple[str, ...]
    strength: float
    seeds: tuple[int, ...]
    global_edit: bool
    baselines: dict[str, Path]
    device: torch.device
    timing_images: int
    timing_warmup: int
    enabled: dict[str, bool | str]  # metrics.<name>.enabled of METRICS_WITH_WEIGHTS

    @property
    def methods(self) -> tuple[str, ...]:
        return (OURS, *((GLOBAL_EDIT,) if self.global_edit else ()), *self.baselines)


def _count(value, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_config(cfg: DictConfig) -> Plan:
    """Validate every setting that needs no work; errors name the config key."""
    rois = (cfg.rois,) if isinstance(cfg.rois, str) else tuple(cfg.rois)
    if not rois or len(set(rois)) != len(rois) or any(roi not in ROI_NAMES for roi in rois):
        raise ConfigError(f"rois: expected distinct regions from {', '.join(ROI_NAMES)}, got {list(rois)}")
    if isinstance(cfg.strength, bool) or not isinstance(cfg.strength, (int, float)) or not math.isfinite(cfg.strength):
        raise ConfigError(f"strength: expected a number, got {cfg.strength!r}")
    seeds = (cfg.seeds,) if isinstance(cfg.seeds, int) else tuple(cfg.seeds)
    if not seeds or any(isinstance(seed, bool) or not isinstance(seed, int) for seed in seeds):
        raise ConfigError(f"seeds: expected a non-empty list of integers, got {cfg.seeds!r}")
    if not isinstance(cfg.metrics.fid.antialias, bool):
        raise ConfigError(f"metrics.fid.antialias: expected true or false, got {cfg.metrics.fid.antialias!r}")
    baselines = {}
    for name, baseline in (cfg.baselines or {}).items():
        if name in (OURS, GLOBAL_EDIT):
            raise ConfigError(f"baselines.{name}: the name is taken by our own method; choose another")
        if baseline and baseline.get("dir"):
            baselines[str(name)] = Path(baseline.dir)
    return Plan(
        rois=rois,
        strength=float(cfg.strength),
        seeds=seeds,
        global_edit=bool(cfg.global_edit),
        baselines=baselines,
        device=resolve_device(str(cfg.device)),
        timing_images=_count(cfg.timing.images, "timing.images", 0),
        timing_warmup=_count(cfg.timing.warmup, "timing.warmup", 0),
        enabled={
            name: check_enabled(cfg.metrics[name].enabled, f"metrics.{name}.enabled") for name in METRICS_WITH_WEIGHTS
        },
    )


def _fid_extractor(cfg: DictConfig) -> torch.nn.Module:
    fid = cfg.metrics.fid
    if fid.get("feature_extractor"):
        return instantiate(fid.feature_extractor)
    return inception_features(fid.feature_extractor_weights_path, fid.antialias, fid.num_features)


def metric_networks(cfg: DictConfig, plan: Plan) -> tuple[dict[str, torch.nn.Module | None], dict[str, str]]:
    """FID's feature extractor and the LPIPS model on the device, as ``metrics.<name>.enabled`` say
    (None: not computed), and the report's note on each metric not computed."""
    lpips = cfg.metrics.lpips
    builders = {
        "fid": lambda: _fid_extractor(cfg),
        "lpips": lambda: build_lpips(lpips.net, lpips.backbone_weights_path, lpips.random_backbone),
    }
    networks, skipped = {}, {}
    for name, build in builders.items():
        network, note = optional_metric(name.upper(), plan.enabled[name], f"metrics.{name}.enabled", build)
        networks[name] = None if network is None else network.to(plan.device)
        if note is not None:
            skipped[name] = note
    return networks, skipped


def _load_present(paths: Sequence[Path | None], size: int, device: torch.device) -> tuple[list[int], Tensor | None]:
    """Indices of the paths given, and their images stacked (N x 3 x size x size), or None for none."""
    present = [index for index, path in enumerate(paths) if path is not None]
    if not present:
        return present, None
    return present, torch.stack([load_image(paths[index], size) for index in present]).to(device)


def score_batch(
    editor: L2SAEEditor, scores: EditScores, pairings: dict[str, Pairing], plan: Plan, batch: dict, roi_index: list[int]
) -> None:
    """Add one evaluation batch's real images, L2SAE's edits and masks, and the baselines' edits to ``scores``."""
    images = batch["image"].to(plan.device)
    masks = batch["roi_masks"][:, roi_index].to(plan.device)  # B x R, in plan.rois order
    stems = [Path(path).stem for path in batch["path"]]
    size = images.shape[-1]
    scores.add_real(images)
    faces = editor.encode(to_size(images, (editor.image_size, editor.image_size)), rois=plan.rois)
    scores.add_masks(OURS, editor.masks(faces, plan.rois), masks)
    for index, roi in enumerate(plan.rois):
        roi_mask = masks[:, index : index + 1]
        for seed in plan.seeds:
            result = editor.edit_style(faces, roi, plan.strength, seed)
            scores.add_edits(OURS, roi, images, result.images, roi_mask)
            if plan.global_edit:
                scores.add_edits(GLOBAL_EDIT, roi, images, result.global_edit, roi_mask)
        for name, pairing in pairings.items():
            present, edits = _load_present([pairing.edit(roi, stem) for stem in stems], size, plan.device)
            if edits is not None:
                scores.add_edits(name, roi, images[present], edits, roi_mask[present])
    for name, pairing in pairings.items():
        present, recons = _load_present([pairing.recon(stem) for stem in stems], size, plan.device)
        if recons is not None:
            scores.add_reconstructions(name, images[present], recons)


def time_edits(editor: L2SAEEditor, images: Sequence[Tensor], plan: Plan, scores: EditScores) -> None:
    """Seconds per L2SAE edit of one image (encode, mask, global edit, matting), per region and pooled."""
    images = [image[None].to(plan.device) for image in images]  # the copy to the GPU is not timed
    pooled = []
    for roi in plan.rois:
        calls = [
            lambda image=image, roi=roi: editor.edit_style(image, roi, plan.strength, plan.seeds[0]) for image in images
        ]
        seconds = measure_seconds(calls, plan.device, plan.timing_warmup)
        scores.set_timing(OURS, roi, seconds)
        pooled += seconds
    scores.set_timing(OURS, ALL_REGIONS, pooled)


def flat_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """``{"<method>/<region>/<metric>": value}`` of every number in the rows (for loggers and sweepers)."""
    return {
        f"{row['method']}/{row['region']}/{key}": float(value)
        for row in rows
        for key, value in row.items()
        if key not in ("method", "region") and isinstance(value, (int, float))
    }


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate as configured by ``conf/evaluate.yaml``; return the flat metrics (see :func:`flat_metrics`)."""
    plan = check_config(cfg)
    datamodule = instantiate(cfg.data)
    swap_plan = structure_swap.check_settings(cfg.structure_swap, datamodule.synthetic)
    if not set(plan.rois) <= set(datamodule.roi_names):
        raise ConfigError(
            f"data: evaluation needs ground-truth masks of the regions {list(plan.rois)}; this data has "
            f"{list(datamodule.roi_names) or 'none (an image folder)'} - use a CelebAMask-HQ layout or fewer rois"
        )
    editor = editor_from_config(cfg, plan.device, plan.rois)
    folders = {
        name: scan_baseline(path, plan.rois, name, key=f"baselines.{name}.dir") for name, path in plan.baselines.items()
    }
    networks, skipped = metric_networks(cfg, plan)
    loggers = instantiate_loggers(cfg)
    datamodule.setup("test")  # draws the synthetic set when configured and missing
    loader = datamodule.test_dataloader()
    roi_index = [datamodule.roi_names.index(roi) for roi in plan.rois]

    scores = EditScores(plan.methods, plan.rois, networks["fid"], networks["lpips"])
    pairings = {name: Pairing(folder) for name, folder in folders.items()}
    timing_images: list[Tensor] = []
    num_images = 0
    for batch in tqdm(loader, desc="evaluate", unit="batch"):
        score_batch(editor, scores, pairings, plan, batch, roi_index)
        num_images += len(batch["path"])
        wanted = plan.timing_images - len(timing_images)
        timing_images += [to_size(image[None], (editor.image_size,) * 2)[0] for image in batch["image"][:wanted]]
    if timing_images:
        time_edits(editor, timing_images, plan, scores)
    for name, folder in folders.items():
        for region, stats in folder.timing.items():
            if region in (*plan.rois, ALL_REGIONS):
                scores.set_timing(name, region, stats)

    rows = scores.rows()
    fid, lpips = cfg.metrics.fid, cfg.metrics.lpips
    fid_setting = f"torchmetrics Inception-v3 pool {fid.num_features}, resize antialias={fid.antialias}"
    if fid.get("feature_extractor"):
        fid_setting = f"injected feature extractor {fid.feature_extractor.get('_target_')}"
    lpips_setting = f"lpips {lpips.net}"
    if lpips.random_backbone:
        lpips_setting += " with a random backbone (tests only: not a perceptual distance)"
    settings = {
        "evaluation images": f"{num_images} (data test split, {cfg.data.image_size} px)",
        "regions": ", ".join(plan.rois),
        "L2SAE strength / seeds": f"{plan.strength} / {list(plan.seeds)}",
        "checkpoints": f"{cfg.ckpt.smn}, {cfg.ckpt.smpn}",
        "FID": "not computed (see notes)" if "fid" in skipped else fid_setting,
        "LPIPS": "not computed (see notes)" if "lpips" in skipped else lpips_setting,
        "timing": f"{len(timing_images)} images one at a time, {plan.timing_warmup} warm-up edits, {plan.device}",
        "images of another size": "resized to the evaluation size (antialiased) before every metric",
    }
    baselines = {name: pairing.summary() for name, pairing in pairings.items()}
    for name, summary in baselines.items():
        if summary["missing"]:
            log.warning(
                "%s: %d edits missing, e.g. %s", name, summary["missing"], ", ".join(summary["missing_examples"])
            )
    paths = write_report(cfg.paths.output_dir, rows, settings, baselines, skipped)
    print(paths["markdown"].read_text())
    log.info("report written to %s", paths["markdown"])
    metrics = flat_metrics(rows)
    if swap_plan is not None:  # structure swaps against ground truth drawn from the synthetic faces
        swap_rows, swap_report = structure_swap.evaluate(
            swap_plan, editor, datamodule, networks["lpips"], cfg.paths.output_dir
        )
        print(swap_report.read_text())
        metrics.update(structure_swap.flat_metrics(swap_rows))
    try:
        log_tables(loggers, rows)
        for logger in loggers:
            logger.log_metrics(metrics)
            logger.save()
    finally:
        finish_wandb()
    return metrics
