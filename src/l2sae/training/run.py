"""``run(cfg)``: train the stages of a composed ``conf/train.yaml`` and leave a complete run folder.

A run trains the stages listed in ``cfg.model`` in order (the quick start: ``smn`` then ``smpn``). A stage is
``{module: <LightningModule config>, export: <path of the exported SAE>, trainer: {...}, data: {...}}``; its
``trainer`` and ``data`` entries override ``cfg.trainer`` / ``cfg.data`` for that stage only (a stage's
``data.image_size`` also sizes its synthetic set and the SMPN's recorded ``image_size``). The run folder
(``cfg.paths.output_dir``) receives ``config.yaml`` (resolved), ``checkpoints/<stage>/last.ckpt``, each stage's
export (``smn.pt``, ``smpn.pt``), ``grid.png`` and ``metrics.json``; ``${paths.log_dir}/latest`` then points at it.
"""

from __future__ import annotations

import logging
import os
import pickle
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from l2sae.editing.editor import check_mask_threshold
from l2sae.nn import SAEConfig, paired_smn
from l2sae.nn.checkpoint import CheckpointError, discriminator_crop_size
from l2sae.utils.curves import learning_curve, plot_curves
from l2sae.utils.errors import ConfigError, unwrapped
from l2sae.utils.files import atomic_symlink, atomic_write_json, atomic_write_text
from l2sae.utils.pretrained import unpickling_reason
from l2sae.utils.tables import metrics_summary
from l2sae.utils.tracking import finish_wandb, instantiate_loggers

from .base import check_lr_decay
from .distributed import RunFolderAgreement, adopt_run_folder, handoff, launched_as_rank_zero
from .mask_head import MaskHeadSettings
from .smpn import SMPNLoss, SMPNModule

FAILURE_FILE = "failure.json"  # read by the sweep report (l2sae.evaluation.sweep)

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    """Train every stage of ``cfg.model``; return the final validation metrics.

    The last stage's metrics keep their names (``val/mask_miou``, ``val/iou_hair``, ...); earlier stages'
    are prefixed with the stage name (``smn/val/rec_l1``). Configuration errors raise :class:`ConfigError`
    naming the key before anything is trained or written. A run that fails leaves ``failure.json`` (the error)
    in its folder, where the sweep report finds it.
    """
    try:
        with lightning_notices_silenced():
            return train_stages(cfg)
    except Exception as error:
        if launched_as_rank_zero() and Path(cfg.paths.output_dir).is_dir():  # Hydra made it; never create one
            record_failure(Path(cfg.paths.output_dir), error)
        raise


@contextmanager
def lightning_notices_silenced() -> Iterator[None]:
    """Lightning's notices that say nothing about a run, off while it trains: its warning on resuming mid-epoch
    (the data module resumes the data order itself, EpochShuffle), that the checkpoint folder is not empty (each
    run has a new folder; only a resumed run writes into its own again), the FutureWarning of its use of torch's
    deprecated pytree ``LeafSpec`` (twice per fit with torch >= 2.10) and its advertisement for litlogger."""

    def not_the_tip(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")

    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        lightning_log.addFilter(not_the_tip)
        try:
            yield
        finally:
            lightning_log.removeFilter(not_the_tip)


def train_stages(cfg: DictConfig) -> dict[str, float]:
    """:func:`run`'s work: check, then train the stages in order, then finish the run folder."""
    stages = check_config(cfg)
    resume = resume_paths(cfg.get("ckpt_path"), stages)
    seed = pl.seed_everything(cfg.seed, workers=True)
    with open_dict(cfg):
        cfg.seed = seed  # the seed used (null: Lightning's choice), as config.yaml records it
    smn_pair = starting_smn(cfg, stages)  # read now: logs/latest, say, moves when another run ends
    if launched_as_rank_zero():
        write_resolved_config(cfg, Path(cfg.paths.output_dir) / "config.yaml")
    metrics: dict[str, float] = {}
    exports: set[str] = set()  # files written by the stages so far (on rank 0)
    previous: pl.Trainer | None = None
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cfg.get("num_threads") or threads)
        for index, (name, stage) in enumerate(stages.items()):
            final = index == len(stages) - 1
            handoff_from = previous.strategy if previous is not None and stage_start(cfg, stage) in exports else None
            stage_metrics, previous, run_dir = train_stage(
                cfg,
                name,
                stage,
                logger_prefix="" if len(stages) == 1 else name,
                handoff_from=handoff_from,
                ckpt_path=resume[name],
                seed=seed,
            )
            adopt_run_folder(cfg, run_dir)
            exports.add(str(stage.export))
            metrics.update({key if final else f"{name}/{key}": value for key, value in stage_metrics.items()})
    except Exception as error:
        finish_wandb(failure_message(error))
        raise
    finally:
        torch.set_num_threads(threads)
        finish_wandb()
    if smn_pair is not None:
        link_smn(smn_pair, Path(stages["smpn"].export).parent / "smn.pt")
    finish_run_folder(metrics, Path(cfg.paths.output_dir), Path(cfg.paths.log_dir))
    return metrics


# ---- configuration checks ------------------------------------------------------------------------
def check_config(cfg: DictConfig) -> dict[str, DictConfig]:
    """Validate what can be validated without work; return the stages in training order.

    Entries of ``cfg.model`` without ``module._target_`` are settings for stages not chosen (an experiment may
    tune both stages while the command line picks one) and are skipped.
    """
    seed, threads = cfg.get("seed"), cfg.get("num_threads")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed: expected an integer or null, got {seed!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"num_threads: expected a positive integer or null, got {threads!r}")
    stages = {
        name: stage for name, stage in (cfg.get("model") or {}).items() if "_target_" in (stage.get("module") or {})
    }
    if not stages:
        raise ConfigError("model: no stage to train; choose model=smn, model=smpn or model=[smn,smpn]")
    for name, stage in stages.items():
        if not stage.get("export"):
            raise ConfigError(f"model.{name}.export: missing (the path the trained SAE is written to)")
    warn_shadowed_overrides(stages)
    try:
        backbone = SAEConfig.from_backbone(cfg.backbone)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    produced: dict[str, int | None] = {}  # export path -> the side of its image discriminator (None: none trained)
    for name, stage in stages.items():
        datamodule = instantiate(stage_config(cfg, "data", stage))
        try:
            backbone.check_image_size(datamodule.image_size, datamodule.image_size, key="data.image_size")
        except ValueError as error:
            raise ConfigError(str(error)) from error
        module = stage.module
        check_optimizer(module.get("optimizer"), f"model.{name}.module.optimizer")
        max_steps = stage_config(cfg, "trainer", stage).get("max_steps", -1)
        if check_lr_decay(module.get("lr_decay")) and max_steps < 0:
            raise ConfigError(
                f"model.{name}.module.lr_decay: a decaying learning rate needs trainer.max_steps (model.{name}.trainer"
                ".max_steps: the run's length); set the lr_decay to null for a run counted in epochs"
            )
        start = stage_start(cfg, stage)
        key = f"model.{name}.module.init_checkpoint" if "init_checkpoint" in module else "backbone.checkpoint"
        if "init_checkpoint" in module and not start:
            raise ConfigError(
                f"{key}: missing; give the SAE to start from (official latest_checkpoint.pth or an smn.pt)"
            )
        if start and str(start) not in produced and not Path(start).is_file():
            raise ConfigError(
                f"{key}: {start} does not exist; give an SAE checkpoint (the official latest_checkpoint.pth "
                f"or an smn.pt of an earlier run, e.g. logs/latest/smn.pt)"
            )
        if "slicing" in module:  # its settings' types, before any of them is used
            SMPNLoss.from_config(module.loss)
            if "mask_threshold" in module:
                check_mask_threshold(module.mask_threshold, f"model.{name}.module.mask_threshold")
            if module.get("mask_head"):
                MaskHeadSettings.from_config(module.mask_head, f"model.{name}.module.mask_head")
        discriminates = "slicing" not in module or module.loss.gan > 0
        crop_size = stage_crop_size(start, produced, backbone.crop_size) if discriminates else None
        if crop_size is not None and datamodule.image_size != crop_size:
            raise ConfigError(crop_size_mismatch(name, datamodule.image_size, crop_size, start, key))
        if "slicing" in module:
            roi_names = module.get("roi_names") or datamodule.roi_names
            scheme = SMPNModule.check_settings(module.slicing, roi_names)
            if str(start) in produced and scheme.num_channels != backbone.structure_channels:
                raise ConfigError(
                    f"slicing.num_channels: the scheme has {scheme.num_channels} channels but the backbone's "
                    f"structure code has {backbone.structure_channels} (backbone.structure_channels)"
                )
        produced[str(stage.export)] = crop_size
    return stages


def stage_crop_size(start: str | None, produced: Mapping[str, int | None], default: int) -> int | None:
    """The side of the image discriminator a stage trains: its start file's (an earlier stage's export or a file
    read by :func:`discriminator_crop_size`; None for a file without one), else ``default`` (backbone.crop_size)."""
    if not start:
        return default
    return produced[start] if start in produced else discriminator_crop_size(start)


def crop_size_mismatch(name: str, size: int, crop_size: int, start: str | None, key: str) -> str:
    """The ConfigError message of a stage whose data.image_size differs from its image discriminator's side."""
    if not start:
        return (
            f"data.image_size: {size} differs from backbone.crop_size {crop_size}, the side the image discriminator "
            f"of model.{name} is built for; give both the same side (++backbone.crop_size={size}, or "
            f"data.image_size={crop_size})"
        )
    return (
        f"data.image_size: {size} differs from {crop_size}, the side the image discriminator in {key} ({start}) is "
        f"built for; train model.{name} at data.image_size={crop_size}, or start from an SAE trained at {size} px"
    )


OPTIMIZER_EXAMPLE = "{_target_: torch.optim.Adam, _partial_: true, lr: 0.002, betas: [0.0, 0.99]}"


def check_optimizer(optimizer: DictConfig | None, key: str) -> None:
    """The optimiser config at ``key`` builds a torch optimiser from a list of parameters (a ``_partial_: true``
    of a ``torch.optim`` class, with settings it accepts); else a ConfigError naming ``key``."""
    try:
        built = instantiate(optimizer)([torch.nn.Parameter(torch.zeros(1))])
    except (InstantiationException, TypeError, ValueError) as error:
        reason = " ".join(str(unwrapped(error)).split())
        raise ConfigError(f"{key}: no optimiser can be built from it ({reason}); e.g. {OPTIMIZER_EXAMPLE}") from error
    if not isinstance(built, torch.optim.Optimizer):
        raise ConfigError(f"{key}: {optimizer._target_} built a {type(built).__name__}, not a torch optimiser")


def warn_shadowed_overrides(stages: Mapping[str, DictConfig]) -> None:
    """Warn about each command-line ``trainer.*`` / ``data.*`` setting that a stage's own entry
    (``model.<stage>.trainer``, ``.data``, often set by an experiment) replaces with another value for that stage."""
    try:
        overrides = OverridesParser.create().parse_overrides(HydraConfig.get().overrides.task)
    except ValueError:  # not started by Hydra: no command line
        return
    for override in overrides:
        group, _, setting = override.key_or_group.partition(".")
        if override.is_delete() or group not in ("trainer", "data") or not setting:
            continue
        value = override.value()
        for name, stage in stages.items():
            own = OmegaConf.select(stage, f"{group}.{setting}", default=None)
            own = OmegaConf.to_container(own) if OmegaConf.is_config(own) else own
            if own is not None and own != value:
                log.warning(
                    "%s=%s does not apply to stage %s: model.%s.%s.%s=%s replaces it there (set that key instead)",
                    override.key_or_group, value, name, name, group, setting, own,
                )  # fmt: skip


def stage_start(cfg: DictConfig, stage: DictConfig) -> str | None:
    """The SAE file a stage starts from: its module's ``init_checkpoint`` (SMPN), else ``backbone.checkpoint``."""
    start = stage.module.init_checkpoint if "init_checkpoint" in stage.module else cfg.backbone.get("checkpoint")
    return str(start) if start else None


def resume_paths(ckpt_path: str | Mapping | None, stages: Mapping[str, DictConfig]) -> dict[str, str | None]:
    """The checkpoint each stage resumes from: ``ckpt_path`` is null, ``last`` (every stage its own
    ``checkpoints/<stage>/last.ckpt``), a file (a run of one stage) or a mapping ``{stage: file | last | null}``."""
    if isinstance(ckpt_path, Mapping):
        unknown = sorted(set(ckpt_path) - set(stages))
        if unknown:
            raise ConfigError(f"ckpt_path: unknown stage(s) {unknown}; this run trains {', '.join(stages)}")
        paths = {name: ckpt_path.get(name) for name in stages}
        keys = {name: f"ckpt_path.{name}" for name in stages}
    else:
        if ckpt_path not in (None, "last") and len(stages) > 1:
            raise ConfigError(
                f"ckpt_path: {ckpt_path} is one stage's checkpoint, but this run trains {', '.join(stages)}; "
                f"name its stage, e.g. ckpt_path={{{list(stages)[-1]}: {ckpt_path}}} (the other stages then start "
                f"afresh unless given too, e.g. {list(stages)[0]}: last), or use ckpt_path=last"
            )
        paths = dict.fromkeys(stages, ckpt_path)
        keys = dict.fromkeys(stages, "ckpt_path")
    for name, path in paths.items():
        if path not in (None, "last") and not Path(path).is_file():
            raise ConfigError(f"{keys[name]}: {path} does not exist; give a Lightning checkpoint (.ckpt) or last")
    return paths


def stage_config(cfg: DictConfig, group: str, stage: DictConfig) -> DictConfig:
    """``cfg[group]`` (``data``, ``trainer``) with the stage's overrides ``stage[group]`` merged in (they may add
    keys), then resolved so that it stands alone; interpolations resolve after the merge, so the group's own
    (``data.synthetic.size: ${data.image_size}``) read the stage's values."""
    merged = OmegaConf.merge(OmegaConf.to_container(cfg), {group: stage.get(group) or {}})
    return OmegaConf.create(OmegaConf.to_container(merged[group], resolve=True))


# ---- one stage -----------------------------------------------------------------------------------
def train_stage(
    cfg: DictConfig,
    name: str,
    stage: DictConfig,
    logger_prefix: str = "",
    handoff_from=None,
    ckpt_path: str | None = None,
    seed: int | None = None,
) -> tuple[dict[str, float], pl.Trainer, str]:
    """Fit one stage (resuming from ``ckpt_path``, read weights-only), validate it once more, export its SAE
    (rank 0).

    ``handoff_from``: the previous stage's strategy when this stage starts from an earlier stage's export; the
    file then reaches every rank from rank 0 (:func:`~l2sae.training.distributed.handoff`). ``seed``: the run's,
    for the training order (the same on every rank, whose random streams differ once training starts).
    Returns the validation metrics, the trainer and rank 0's run folder (agreed once the process group exists).
    """
    datamodule = instantiate(stage_config(cfg, "data", stage), seed=seed)
    overrides = {"image_size": datamodule.image_size} if "image_size" in stage.module else {}
    if "roi_names" in stage.module and stage.module.roi_names is None:
        overrides["roi_names"] = list(datamodule.roi_names)
    with handoff(handoff_from, stage_start(cfg, stage)) if handoff_from else nullcontext() as start:
        if start and "init_checkpoint" in stage.module:
            overrides["init_checkpoint"] = start
        elif start:
            overrides["backbone"] = {**OmegaConf.to_container(stage.module.backbone, resolve=True), "checkpoint": start}
        module = instantiate(stage.module, **overrides)
    agreement = RunFolderAgreement(cfg.paths.output_dir)
    trainer = instantiate(
        stage_config(cfg, "trainer", stage),
        callbacks=[*instantiate_callbacks(cfg.get("callbacks"), name), agreement],
        logger=instantiate_loggers(cfg, logger_prefix) or False,
    )
    if ckpt_path and datamodule.hflip:
        log.warning(
            "resuming stage %s from %s: weights, optimisers, step, data order and random states are restored, but "
            "random flips (data.hflip) of resumed batches are drawn anew, so the run differs slightly from an "
            "uninterrupted one (data.hflip=false resumes exactly)",
            name,
            ckpt_path,
        )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"ckpt_path: {ckpt_path} holds more than weights and plain data (it could hold code), so it is not "
            f"loaded; resume from a checkpoint written by this project's training ({unpickling_reason(error)})"
        ) from error
    module.after_fit(trainer, datamodule)
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {key: float(value) for key, value in (results[0] if results else {}).items()}
    module.after_validation(metrics)
    if trainer.is_global_zero:
        module.export(stage.export)
    trainer.strategy.barrier("export")
    return metrics, trainer, agreement.run_dir


def instantiate_callbacks(callbacks_cfg: DictConfig | None, stage: str) -> list[pl.Callback]:
    """Every ``_target_`` entry of ``cfg.callbacks``; checkpoints go to ``<dirpath>/<stage>``."""
    callbacks = [instantiate(node) for node in (callbacks_cfg or {}).values() if node and "_target_" in node]
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            callback.dirpath = os.path.join(callback.dirpath, stage)
    return callbacks


# ---- run folder ------------------------------------------------------------------------------------
def write_resolved_config(cfg: DictConfig, path: Path) -> None:
    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


def starting_smn(cfg: DictConfig, stages: Mapping[str, DictConfig]) -> Path | None:
    """For a run that trains only the SMPN, from a start file: the SMN that file pairs with
    (:func:`~l2sae.nn.paired_smn`: the file itself, or the ``smn.pt`` beside a start SMPN); else, or when it
    cannot be told (logged), None."""
    start = stage_start(cfg, stages["smpn"]) if list(stages) == ["smpn"] else None
    if start is None:
        return None
    try:
        smn = paired_smn(start)
    except (OSError, RuntimeError, CheckpointError) as error:  # a file gone, a link loop, a damaged file
        log.warning("no smn.pt link in the run folder: the SMN that %s pairs with is unknown (%s)", start, error)
        return None
    if smn is None:
        log.warning("no smn.pt link in the run folder: %s is an SMPN with no smn.pt beside it", start)
    return smn


@rank_zero_only
def link_smn(smn: Path, link: Path) -> None:
    """``link`` (``smn.pt`` beside an SMPN-only run's ``smpn.pt``) pointing at ``smn``, the SMN it pairs with, so
    ``edit.py``, ``evaluate.py`` and ``app.py`` read the run folder (``logs/latest``) as they read a full run's;
    a file already there (a resumed run's link) is kept."""
    if link.exists() or link.is_symlink():
        return
    atomic_symlink(smn, link)
    log.info("%s: a link to the SMN this SMPN pairs with, %s", link, smn)


@rank_zero_only
def finish_run_folder(metrics: Mapping[str, float], output_dir: Path, log_dir: Path) -> None:
    """Write ``metrics.json`` and ``learning_curves.png`` (validation mIoU against step), point ``<log_dir>/latest`` at the run folder (atomic link swap), print the folder."""
    atomic_write_json(output_dir / "metrics.json", dict(metrics))
    (output_dir / FAILURE_FILE).unlink(missing_ok=True)  # of an earlier attempt in this folder
    curve = learning_curve(output_dir)
    if curve:
        plot_curves({output_dir.name: curve}, output_dir / "learning_curves.png", ylabel="val/mask_miou")
    log_dir.mkdir(parents=True, exist_ok=True)
    atomic_symlink(output_dir, log_dir / "latest")
    if metrics:
        print(f"Final validation metrics (metrics.json):\n{metrics_summary(metrics)}")
    print(f"Run folder: {output_dir}")


def record_failure(output_dir: Path, error: BaseException) -> None:
    """``failure.json`` in the run folder: the error (:func:`failure_message`) and the traceback."""
    trace = "".join(traceback.format_exception(error))
    atomic_write_json(output_dir / FAILURE_FILE, {"error": failure_message(error), "traceback": trace})


def failure_message(error: BaseException) -> str:
    """The error's type and message; the cause of Hydra's wrapper when an object could not be built."""
    error = unwrapped(error)
    return f"{type(error).__name__}: {error}"


def objective(cfg: DictConfig) -> float | dict[str, float]:
    """``train.py``'s task: :func:`run`, then what a sweeper receives (:func:`optimized_value`)."""
    return optimized_value(run(cfg), cfg.get("optimized_metric"))


def optimized_value(metrics: Mapping[str, float], name: str | None) -> float | dict[str, float]:
    """What ``train.py`` returns to a sweeper: the metric ``optimized_metric`` names, else all metrics.

    A name the run did not produce is a ConfigError listing the ones it did (a sweeper never receives None).
    """
    if not name:
        return dict(metrics)
    if name not in metrics:
        raise ConfigError(f"optimized_metric: {name!r} is not among this run's metrics ({', '.join(metrics)})")
    return float(metrics[name])
