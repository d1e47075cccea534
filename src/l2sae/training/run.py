"""``run(cfg)``: train the stages of a composed ``conf/train.yaml`` and leave a complete run folder.

A run trains the stages listed in ``cfg.model`` in order (the quick start: ``smn`` then ``smpn``). A stage is
``{module: <LightningModule config>, export: <path of the exported SAE>, trainer: {...}, data: {...}}``; its
``trainer`` and ``data`` entries override ``cfg.trainer`` / ``cfg.data`` for that stage only. The run folder
(``cfg.paths.output_dir``) receives ``config.yaml`` (resolved), ``checkpoints/<stage>/last.ckpt``, each stage's
export (``smn.pt``, ``smpn.pt``), ``grid.png`` and ``metrics.json``; ``${paths.log_dir}/latest`` then points at it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from l2sae.data.io import atomic_write_bytes, atomic_write_json
from l2sae.nn import SAEConfig
from l2sae.regions import ConfigError

from .smpn import SMPNModule

# config groups whose chosen option becomes a W&B tag
TAGGED_GROUPS = ("experiment", "model", "backbone", "data", "slicing", "loss", "trainer")


def run(cfg: DictConfig) -> dict[str, float]:
    """Train every stage of ``cfg.model``; return the final validation metrics.

    The last stage's metrics keep their names (``val/mask_miou``, ``val/iou_hair``, ...); earlier stages'
    are prefixed with the stage name (``smn/val/rec_l1``). Configuration errors raise :class:`ConfigError`
    naming the key before anything is trained or written.
    """
    stages = check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    write_resolved_config(cfg, output_dir / "config.yaml")
    metrics: dict[str, float] = {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cfg.get("num_threads") or threads)
        for index, (name, stage) in enumerate(stages.items()):
            final = index == len(stages) - 1
            stage_metrics = train_stage(cfg, name, stage, logger_prefix="" if len(stages) == 1 else name)
            metrics.update({key if final else f"{name}/{key}": value for key, value in stage_metrics.items()})
    finally:
        torch.set_num_threads(threads)
        finish_wandb()
    finish_run_folder(metrics, output_dir, Path(cfg.paths.log_dir))
    return metrics


# ---- configuration checks ------------------------------------------------------------------------
def check_config(cfg: DictConfig) -> dict[str, DictConfig]:
    """Validate what can be validated without work; return the stages in training order.

    Entries of ``cfg.model`` without ``module._target_`` are settings for stages not chosen (an experiment may
    tune both stages while the command line picks one) and are skipped.
    """
    stages = {
        name: stage for name, stage in (cfg.get("model") or {}).items() if "_target_" in (stage.get("module") or {})
    }
    if not stages:
        raise ConfigError("model: no stage to train; choose model=smn, model=smpn or model=[smn,smpn]")
    for name, stage in stages.items():
        if not stage.get("export"):
            raise ConfigError(f"model.{name}.export: missing (the path the trained SAE is written to)")
    try:
        backbone = SAEConfig.from_backbone(cfg.backbone)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    produced: set[str] = set()
    for name, stage in stages.items():
        datamodule = instantiate(stage_config(cfg.data, stage.get("data")))
        try:
            backbone.check_image_size(datamodule.image_size, datamodule.image_size, key="data.image_size")
        except ValueError as error:
            raise ConfigError(str(error)) from error
        module = stage.module
        discriminates = "slicing" not in module or module.loss.gan > 0
        if discriminates and not cfg.backbone.get("checkpoint") and datamodule.image_size != backbone.crop_size:
            raise ConfigError(
                f"data.image_size: {datamodule.image_size} differs from backbone.crop_size {backbone.crop_size}, "
                f"the side the image discriminator of model.{name} is built for"
            )
        if "init_checkpoint" in module:
            start, key = module.init_checkpoint, f"model.{name}.module.init_checkpoint"
            if not start:
                raise ConfigError(
                    f"{key}: missing; give the SAE to start from (official latest_checkpoint.pth or an smn.pt)"
                )
        else:
            start, key = cfg.backbone.get("checkpoint"), "backbone.checkpoint"
        if start and str(start) not in produced and not Path(start).is_file():
            raise ConfigError(
                f"{key}: {start} does not exist; give an SAE checkpoint (the official latest_checkpoint.pth "
                f"or an smn.pt of an earlier run, e.g. logs/latest/smn.pt)"
            )
        if "slicing" in module:
            roi_names = module.get("roi_names") or datamodule.roi_names
            scheme = SMPNModule.check_settings(module.slicing, roi_names, module.loss)
            if str(start) in produced and scheme.num_channels != backbone.structure_channels:
                raise ConfigError(
                    f"slicing.num_channels: the scheme has {scheme.num_channels} channels but the backbone's "
                    f"structure code has {backbone.structure_channels} (backbone.structure_channels)"
                )
        produced.add(str(stage.export))
    return stages


def stage_config(group: DictConfig, overrides: DictConfig | None) -> DictConfig:
    """A group's config (``cfg.data``, ``cfg.trainer``) with a stage's overrides merged in (resolved, so it
    stands alone; the overrides may add keys)."""
    merged = OmegaConf.merge(OmegaConf.to_container(group, resolve=True), overrides or {})
    return OmegaConf.create(OmegaConf.to_container(merged, resolve=True))


# ---- one stage -----------------------------------------------------------------------------------
def train_stage(cfg: DictConfig, name: str, stage: DictConfig, logger_prefix: str = "") -> dict[str, float]:
    """Fit one stage, validate it once more, export its SAE; return the validation metrics."""
    datamodule = instantiate(stage_config(cfg.data, stage.get("data")))
    takes_data_regions = "roi_names" in stage.module and stage.module.roi_names is None
    module = instantiate(stage.module, **({"roi_names": list(datamodule.roi_names)} if takes_data_regions else {}))
    trainer = instantiate(
        stage_config(cfg.trainer, stage.get("trainer")),
        callbacks=instantiate_callbacks(cfg.get("callbacks"), name),
        logger=instantiate_loggers(cfg, logger_prefix) or False,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    if trainer.is_global_zero:
        module.export(stage.export)
    trainer.strategy.barrier("export")  # the next stage may start from this export, on every rank
    return {key: float(value) for key, value in (results[0] if results else {}).items()}


def instantiate_callbacks(callbacks_cfg: DictConfig | None, stage: str) -> list[pl.Callback]:
    """Every ``_target_`` entry of ``cfg.callbacks``; checkpoints go to ``<dirpath>/<stage>``."""
    callbacks = [instantiate(node) for node in (callbacks_cfg or {}).values() if node and "_target_" in node]
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            callback.dirpath = os.path.join(callback.dirpath, stage)
    return callbacks


def instantiate_loggers(cfg: DictConfig, prefix: str = "") -> list[Logger]:
    """Every ``_target_`` entry of ``cfg.logger``; metric names get ``prefix`` (the stage) when several stages run."""
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if not node or "_target_" not in node:
            continue
        overrides = {"prefix": prefix} if prefix else {}
        if node._target_.endswith("WandbLogger"):
            overrides.update(wandb_identity(cfg, node))
        loggers.append(instantiate(node, **overrides))
    return loggers


def wandb_identity(cfg: DictConfig, node: DictConfig) -> dict:
    """Name, group and tags of the W&B run where the config leaves them empty.

    name: the run folder's name (a time stamp, or the job number in a sweep); group: the sweep folder's name,
    so each job of ``-m`` is its own run grouped per sweep; tags: ``group=choice`` of the config groups.
    """
    output_dir = Path(cfg.paths.output_dir)
    identity: dict = {}
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not node.get("name"):
        identity["name"] = f"{output_dir.parent.name}-{output_dir.name}" if multirun else output_dir.name
    if not node.get("group") and multirun:
        identity["group"] = f"{cfg.task_name}-{output_dir.parent.name}"
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        tags = [f"{group}={choices[group]}" for group in TAGGED_GROUPS if choices.get(group)]
        identity["tags"] = list(node.get("tags") or []) + tags
    return identity


def finish_wandb() -> None:
    """Close the W&B run, if one was started (each job of a sweep must get its own)."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


# ---- run folder ------------------------------------------------------------------------------------
@rank_zero_only
def write_resolved_config(cfg: DictConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, OmegaConf.to_yaml(cfg, resolve=True).encode())


@rank_zero_only
def finish_run_folder(metrics: Mapping[str, float], output_dir: Path, log_dir: Path) -> None:
    """Write ``metrics.json``, point ``<log_dir>/latest`` at the run folder (atomic link swap), print the folder."""
    atomic_write_json(output_dir / "metrics.json", dict(metrics))
    log_dir.mkdir(parents=True, exist_ok=True)
    temporary = log_dir / f".latest.tmp{os.getpid()}"
    temporary.unlink(missing_ok=True)
    os.symlink(os.path.relpath(output_dir.resolve(), log_dir.resolve()), temporary)
    os.replace(temporary, log_dir / "latest")
    print(f"Run folder: {output_dir}")
