"""Training configs: every group option composes, slicing schemes are valid, config errors name their key."""

import copy
import dataclasses
import logging
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from train_helpers import CONF, compose_train, tiny_sae_file

from l2sae.data import LogSkippedFiles
from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
from l2sae.regions import ROI_NAMES, SliceScheme
from l2sae.training.run import check_config, instantiate_callbacks, run
from l2sae.utils.errors import ConfigError, unwrapped
from l2sae.utils.tracking import wandb_identity


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture
def folders(tmp_path):
    return tmp_path / "logs" / "run", tmp_path / "data"


def test_default_is_the_quick_start_smn_then_smpn(folders):
    cfg = compose_train(*folders)
    assert list(check_config(cfg)) == ["smn", "smpn"]
    assert cfg.model.smpn.module.init_checkpoint == cfg.model.smn.export == f"{folders[0]}/smn.pt"
    assert cfg.trainer.accelerator == "cpu" and list(cfg.logger) == ["csv"]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(folders, experiment):
    cfg = compose_train(*folders, [f"experiment={experiment}"], tiny_data=False)
    stages = {name for name, stage in cfg.model.items() if "_target_" in stage.get("module", {})}
    assert stages and stages <= {"smn", "smpn"}
    SliceScheme.from_dict(cfg.slicing)


@pytest.mark.parametrize("slicing", options("slicing"))
def test_slicing_schemes_are_valid_and_cover_every_roi(slicing):
    scheme = SliceScheme.from_dict(yaml.safe_load((CONF / "slicing" / f"{slicing}.yaml").read_text()))
    assert set(scheme.roi_names) == set(ROI_NAMES)
    assert scheme.channel_masks().sum(0).max() == 1  # disjoint


def test_there_are_ablation_schemes_including_a_16_channel_one():
    schemes = [yaml.safe_load((CONF / "slicing" / f"{name}.yaml").read_text()) for name in options("slicing")]
    assert len(schemes) >= 4 and any(scheme["num_channels"] == 16 for scheme in schemes)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_multinode", "debug"])
def test_trainer_options(folders, trainer):
    cfg = compose_train(*folders, [f"trainer={trainer}"])
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if trainer.startswith("ddp"):
        assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"


@pytest.mark.parametrize(
    "override, key",
    [
        ("slicing.channels.hair=[0,9]", "slicing.channels.hair"),  # out of range
        ("slicing.channels.skin=[1,2]", "slicing.channels.skin"),  # overlaps hair's channel 1
        ("+slicing.channels.beard=[7]", "slicing.channels.beard"),  # unknown ROI
        ("~slicing.channels.nose", "slicing.channels"),  # a ROI of the data without channels
        ("slicing=sixteen", "slicing.num_channels"),  # 16 channels for an 8-channel backbone
    ],
)
def test_bad_slicing_fails_before_any_work_naming_the_key(folders, override, key):
    cfg = compose_train(*folders, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(cfg)
    assert not folders[0].exists()  # nothing written, nothing trained


def test_missing_start_checkpoint_names_the_key(folders):
    cfg = compose_train(*folders, ["model=smpn", "model.smpn.module.init_checkpoint=/nowhere/smn.pt"])
    with pytest.raises(ConfigError, match=r"model\.smpn\.module\.init_checkpoint: /nowhere/smn\.pt does not exist"):
        run(cfg)


def test_smpn_alone_takes_an_existing_checkpoint(folders, tmp_path):
    start = tiny_sae_file(tmp_path / "smn.pt")
    cfg = compose_train(*folders, ["model=smpn", f"model.smpn.module.init_checkpoint={start}"])
    assert list(check_config(cfg)) == ["smpn"]


@pytest.mark.parametrize("value", ["-1", "heavy"])
def test_bad_foreground_weight_names_the_key(folders, value):
    cfg = compose_train(*folders, [f"loss.smpn.region.foreground_weight={value}"])
    with pytest.raises(ConfigError, match=r"loss\.smpn\.region\.foreground_weight"):
        run(cfg)
    assert not folders[0].exists()


@pytest.mark.parametrize(
    "size, reason",
    [
        (62, "not divisible"),
        (60, r"differs from backbone.crop_size 64.*\(\+\+backbone\.crop_size=60, or data\.image_size=64\)"),
    ],
)
def test_bad_image_size_names_the_key(folders, size, reason):
    cfg = compose_train(*folders, [f"data.image_size={size}"])
    with pytest.raises(ConfigError, match=rf"data\.image_size: .*{reason}"):
        run(cfg)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model=smn", "backbone.checkpoint={start}"], "backbone.checkpoint"),
        (["model=smpn", "model.smpn.module.init_checkpoint={start}", "loss.smpn.gan=0.1"], "model.smpn.module.init"),
        (["model=[smn,smpn]", "loss.smpn.gan=0.1", "+model.smpn.data.image_size=128"], "model.smpn.module.init"),
    ],
)
def test_an_image_size_unlike_the_start_discriminator_fails_before_any_work(folders, tmp_path, overrides, key):
    """The side of the image discriminator taken over from a 64 px SMN file (or the run's own SMN stage)."""
    start = tiny_sae_file(tmp_path / "start" / "smn.pt")
    size = [] if "model=[smn,smpn]" in overrides else ["data.image_size=128"]
    cfg = compose_train(*folders, [*(o.format(start=start) for o in overrides), *size])
    message = rf"data\.image_size: 128 differs from 64, the side the image discriminator in {key}.*data\.image_size=64"
    with pytest.raises(ConfigError, match=message):
        run(cfg)
    assert not folders[0].exists() and not folders[1].exists()


def test_a_start_discriminator_of_the_data_side_passes_whatever_backbone_crop_size(folders, tmp_path):
    wide = SwappingAutoencoder(dataclasses.replace(SAEConfig.preset("tiny"), crop_size=128))
    start = save_sae(wide, tmp_path / "start" / "smn.pt")
    overrides = [f"model.smpn.module.init_checkpoint={start}", "loss.smpn.gan=0.1", "data.image_size=128"]
    assert list(check_config(compose_train(*folders, ["model=smpn", *overrides]))) == ["smpn"]
    smn = ["model=smn", f"backbone.checkpoint={start}", "data.image_size=128"]
    assert list(check_config(compose_train(*folders, smn))) == ["smn"]


def test_the_default_callbacks_log_skipped_files(folders):
    callbacks = instantiate_callbacks(compose_train(*folders).callbacks, "smn")
    assert sum(isinstance(callback, LogSkippedFiles) for callback in callbacks) == 1


def test_wandb_offline_by_default_and_disabled_in_tests(folders, monkeypatch):
    cfg = compose_train(*folders, ["logger=wandb"])
    assert cfg.logger.wandb.mode == "disabled"  # tests/conftest.py sets WANDB_MODE=disabled
    assert cfg.logger.wandb.offline is False  # offline=True would override WANDB_MODE
    monkeypatch.delenv("WANDB_MODE")
    cfg = compose_train(*folders, ["logger=wandb"])
    assert cfg.logger.wandb.mode == "offline"


def test_wandb_sweep_jobs_are_runs_grouped_per_sweep_and_tagged(tmp_path):
    run_dir = tmp_path / "multiruns" / "2026-01-01_00-00-00-000001" / "3"
    overrides = ["logger=wandb", "slicing=one_each", "hydra.mode=MULTIRUN", "tags=[ablation,v2]"]
    cfg = compose_train(run_dir, tmp_path / "data", overrides)
    identity = wandb_identity(cfg, cfg.logger.wandb)
    assert identity["name"] == "2026-01-01_00-00-00-000001-3"
    assert identity["group"] == "train-2026-01-01_00-00-00-000001"
    assert identity["tags"][:2] == ["ablation", "v2"]
    assert "slicing=one_each" in identity["tags"] and "experiment=quickstart" in identity["tags"]
    assert "slicing=one_each" in identity["config"]["overrides"] and identity["config"]["tags"] == ["ablation", "v2"]


def test_run_folders_carry_a_time_stamp_with_microseconds():
    hydra_layout = yaml.safe_load((CONF / "hydra" / "default.yaml").read_text())
    assert "%f" in hydra_layout["run"]["dir"] and hydra_layout["sweep"]["subdir"] == "${hydra.job.num}"
    assert Path(CONF / "train.yaml").read_text().count("experiment: quickstart") == 1


WRONG_TYPES = [
    ("seed", "abc", "seed: expected an integer or null, got 'abc'"),
    ("num_threads", "two", "num_threads: expected a positive integer or null, got 'two'"),
    ("num_threads", 0, "num_threads: expected a positive integer or null, got 0"),
    ("data.hflip", "maybe", "data.hflip: expected true or false, got 'maybe'"),
    ("loss.smpn.gan", "abc", "loss.smpn.gan"),
    ("model.smpn.module.mask_threshold", "high", "model.smpn.module.mask_threshold: expected a number"),
    ("model.smpn.module.mask_head.epochs", "many", "model.smpn.module.mask_head.epochs: expected an integer"),
]


def test_settings_of_the_wrong_type_fail_naming_the_key_before_any_work(folders):
    """Also the second stage's settings: nothing is trained before they are known to be right (the data module's
    own checks reach the command line through Hydra's InstantiationException, which it unwraps). One composed
    config, a key set wrong on a copy of it per case (composing is the slow part)."""
    composed = compose_train(*folders)
    for key, value, message in WRONG_TYPES:
        cfg = copy.deepcopy(composed)
        OmegaConf.update(cfg, key, value, force_add=True)
        with pytest.raises(Exception) as caught:
            run(cfg)
        error = unwrapped(caught.value)
        assert isinstance(error, ConfigError) and re.search(message, str(error)), (key, error)
    assert not folders[0].exists() and not folders[1].exists()


def test_a_command_line_setting_a_stage_replaces_is_named_in_a_warning(folders, caplog):
    cfg = compose_train(*folders, ["trainer.max_steps=100"])  # the quick start sets each stage's own max_steps
    with caplog.at_level(logging.WARNING, logger="l2sae.training.run"):
        check_config(cfg)
    warnings = [record.getMessage() for record in caplog.records]
    assert any(
        message.startswith("trainer.max_steps=100 does not apply to stage smn: model.smn.trainer.max_steps=")
        for message in warnings
    ), warnings
    same = cfg.model.smn.trainer.max_steps
    for override in ("model.smn.trainer.max_steps=100", f"trainer.max_steps={float(same)}", "~trainer.max_steps"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="l2sae.training.run"):
            check_config(compose_train(*folders, [override]))
        assert not [record for record in caplog.records if "does not apply to stage smn" in record.getMessage()]
