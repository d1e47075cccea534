"""Optimisers built by Hydra from ``model.<stage>.module.optimizer`` (a ``_partial_`` target): the configured
settings in every parameter group of G's and D's optimisers, the official SAE settings, plain settings in
checkpoints read weights-only, errors naming the key."""

import pytest
import torch
from hydra.utils import instantiate
from train_helpers import compose_train

from l2sae.regions import ROI_NAMES
from l2sae.training import run
from l2sae.utils.errors import ConfigError


def built_optimizers(tmp_path, data_dir, stage: str, overrides: list[str]):
    """The module of ``stage`` as train.py builds it, and its (generator, discriminator) optimisers."""
    cfg = compose_train(tmp_path / "logs" / "run", data_dir, [f"model={stage}", *overrides])
    extra = {"roi_names": list(ROI_NAMES)} if stage == "smpn" else {}
    module = instantiate(cfg.model[stage].module, **extra)
    generator, discriminator = module.configure_optimizers()
    return module, generator, discriminator


def assert_settings(optimizer, kind, lr, betas, eps=1e-8):
    assert type(optimizer) is kind
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(lr, rel=1e-12) and group["eps"] == eps
        assert tuple(group["betas"]) == pytest.approx(betas, rel=1e-12)


def parameter_ids(*networks) -> list[int]:
    return [id(parameter) for network in networks for parameter in network.parameters()]


def optimised_ids(optimizer) -> list[int]:
    return [id(parameter) for group in optimizer.param_groups for parameter in group["params"]]


def test_the_smn_gets_the_official_sae_adam_settings(tmp_path, data_dir):
    """Official SAE: Adam(G + E, lr 0.002, betas (0, 0.99)); Adam(D + Dpatch, lr 0.002 c, betas ** c), c = 16/17."""
    module, generator, discriminator = built_optimizers(tmp_path, data_dir, "smn", ["~experiment"])
    c = 16 / 17
    assert_settings(generator, torch.optim.Adam, 0.002, (0.0, 0.99))
    assert_settings(discriminator, torch.optim.Adam, 0.002 * c, (0.0, 0.99**c))
    assert optimised_ids(generator) == parameter_ids(module.sae.G, module.sae.E)
    assert optimised_ids(discriminator) == parameter_ids(module.sae.D, module.sae.Dpatch)


def test_the_smpn_gets_the_configured_optimiser_for_g_and_d(tmp_path, data_dir, start_checkpoint):
    common = [f"model.smpn.module.init_checkpoint={start_checkpoint}", "loss.smpn.gan=0.1", "loss.smpn.r1_every=4"]
    settings = ["model.smpn.module.optimizer.lr=0.004", "model.smpn.module.optimizer.betas=[0.5,0.9]"]
    module, generator, discriminator = built_optimizers(tmp_path, data_dir, "smpn", [*common, *settings])
    assert_settings(generator, torch.optim.Adam, 0.004, (0.5, 0.9))
    assert_settings(discriminator, torch.optim.Adam, 0.004 * 0.8, (0.5**0.8, 0.9**0.8))  # c = 4/5
    assert optimised_ids(generator) == parameter_ids(module.sae.G, module.sae.E)
    assert optimised_ids(discriminator) == parameter_ids(module.sae.D)

    another = [
        "model.smpn.module.optimizer._target_=torch.optim.AdamW",
        "+model.smpn.module.optimizer.weight_decay=0.1",
    ]
    _, generator, discriminator = built_optimizers(tmp_path, data_dir, "smpn", [*common, *settings, *another])
    assert_settings(generator, torch.optim.AdamW, 0.004, (0.5, 0.9))
    assert generator.param_groups[0]["weight_decay"] == discriminator.param_groups[0]["weight_decay"] == 0.1


def test_checkpoints_hold_the_optimiser_as_plain_settings_read_weights_only(tmp_path, data_dir):
    run_dir = tmp_path / "logs" / "run"
    stage = ["model=smn", "model.smn.trainer.max_steps=2", "model.smn.module.optimizer.lr=0.003"]
    run(compose_train(run_dir, data_dir, [*stage, "trainer.limit_val_batches=1", "callbacks.image_grid=null"]))
    saved = torch.load(run_dir / "checkpoints" / "smn" / "last.ckpt", weights_only=True)
    recorded = saved["hyper_parameters"]["optimizer_config"]
    assert "optimizer" not in saved["hyper_parameters"]
    assert recorded == {
        "_target_": "torch.optim.adam.Adam",
        "_partial_": True,
        "lr": 0.003,
        "betas": [0.0, 0.99],
        "eps": 1e-8,
    }
    parameter = torch.nn.Parameter(torch.zeros(1))
    assert instantiate(recorded)([parameter]).param_groups[0]["lr"] == 0.003  # the settings rebuild it


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.smpn.module.optimizer._target_=torch.optim.Adamm", r"Error loading 'torch\.optim\.Adamm'"),
        (
            "model.smpn.module.optimizer._partial_=false",
            r"missing 1 required positional argument: 'params'.*_partial_: true",
        ),
        ("model.smpn.module.optimizer=null", r"'NoneType' object is not callable"),
        ("model.smpn.module.optimizer.lr=-1", r"Invalid learning rate: -1"),
        ("+model.smpn.module.optimizer.momentum=0.9", r"unexpected keyword argument 'momentum'"),
        ("model.smpn.module.optimizer._target_=torch.nn.Identity", r"built a Identity, not a torch optimiser"),
    ],
)
def test_a_bad_optimiser_fails_before_any_work_naming_the_key(tmp_path, data_dir, start_checkpoint, override, message):
    run_dir = tmp_path / "logs" / "run"
    overrides = ["model=smpn", f"model.smpn.module.init_checkpoint={start_checkpoint}", override]
    with pytest.raises(ConfigError, match=rf"^model\.smpn\.module\.optimizer: .*{message}"):
        run(compose_train(run_dir, data_dir, overrides))
    assert not run_dir.exists()
