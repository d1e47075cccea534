"""Training runs on tiny configs: fast_dev_run of both modules, resume with ``ckpt_path=last``, the NaN guard,
the learning-rate decay."""

import json
import logging
import re
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from tiny_networks import TINY_SLICING
from train_helpers import BRIEF_MASK_HEAD, L1_SMPN_LOSS, RecordLearningRates, RecordStart, compose_train, tiny_sae_file

from l2sae.losses import sae_r1_loss
from l2sae.nn import SAEConfig, SwappingAutoencoder, load_sae, read_extra, save_sae
from l2sae.regions import ROI_NAMES
from l2sae.training import NonFiniteLossError, SMPNModule, optimized_value, run, smn
from l2sae.training.base import check_lr_decay, lr_decay_factor
from l2sae.training.run import starting_smn
from l2sae.training.smpn import SMPNLoss, foreground_weights
from l2sae.utils.errors import ConfigError
from l2sae.utils.tables import metrics_summary


def test_fast_dev_run_smn_exports_a_loadable_sae(tmp_path, data_dir):
    run_dir = tmp_path / "logs" / "run"
    metrics = run(compose_train(run_dir, data_dir, ["model=smn", "trainer=debug"]))
    assert set(metrics) == {"val/rec_l1"} and 0 < metrics["val/rec_l1"] < 2
    smn = load_sae(run_dir / "smn.pt")
    assert smn.has_discriminators and read_extra(run_dir / "smn.pt") == {"kind": "smn"}
    assert json.loads((run_dir / "metrics.json").read_text()) == pytest.approx(metrics)
    assert (tmp_path / "logs" / "latest").resolve() == run_dir.resolve()


@pytest.mark.parametrize(
    ("weights", "r1_steps"),
    [
        (["loss.sae.weights.r1=0", "loss.sae.weights.patch_r1=0"], 0),  # raised "does not require grad" before
        (["loss.sae.weights.r1=0"], 1),
    ],
)
def test_the_lazy_r1_step_runs_only_where_an_r1_term_applies(tmp_path, data_dir, monkeypatch, weights, r1_steps):
    calls = []
    monkeypatch.setattr(smn, "sae_r1_loss", lambda *args: calls.append(args) or sae_r1_loss(*args))
    overrides = ["model=smn", "trainer=debug", "callbacks.image_grid=null", "loss.sae.r1_every=1", *weights]
    metrics = run(compose_train(tmp_path / "logs" / "run", data_dir, overrides))
    assert len(calls) == r1_steps and 0 < metrics["val/rec_l1"] < 2


def test_fast_dev_run_smpn_logs_mask_iou_and_exports_its_slicing(tmp_path, data_dir, start_checkpoint, caplog):
    run_dir = tmp_path / "logs" / "run"
    overrides = [
        "model=smpn",
        "trainer=debug",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        *BRIEF_MASK_HEAD,
    ]
    with caplog.at_level(logging.INFO, logger="l2sae.training.smpn"):
        metrics = run(compose_train(run_dir, data_dir, overrides))
    (distilled,) = [record.getMessage() for record in caplog.records if record.name == "l2sae.training.smpn"]
    assert re.fullmatch(
        r"mask head on UpsamplingResBlock32 distilled from \d+ images in [\d.]+ s: loss [\d.]+", distilled
    )
    fast_masks = {f"val/fast_matte_iou_{roi}" for roi in ROI_NAMES} | {"val/fast_matte_iou", "val/fast_mask_iou"}
    assert {f"val/iou_{roi}" for roi in ROI_NAMES} | {"val/mask_miou", "val/rec", "val/region"} | fast_masks == set(
        metrics
    )
    ious = [metrics[f"val/iou_{roi}"] for roi in ROI_NAMES]
    assert metrics["val/mask_miou"] == pytest.approx(sum(ious) / len(ious))
    extra = read_extra(run_dir / "smpn.pt")
    assert extra["kind"] == "smpn" and extra["image_size"] == 64 and extra["roi_names"] == list(ROI_NAMES)
    assert (
        extra["mask_threshold"] == 0.2
    )  # the quick start's; the editor reads masks with the threshold validation used
    assert extra["slicing"]["channels"]["hair"] == [0, 1]
    # the quick start's head: the 32 px block of this 64 px SAE (8 px code)
    assert extra["mask_head"]["block"] == "UpsamplingResBlock32" and extra["mask_head"]["mask_threshold"] == 0.2
    # the last validation's agreement with the full masks, recorded for the editor's masks=auto
    recorded = extra["mask_head"]["matte_iou"]
    assert recorded == pytest.approx({roi: metrics[f"val/fast_matte_iou_{roi}"] for roi in ROI_NAMES})
    # an SMPN-only run folder holds the pair the editor reads: smn.pt links to the SMN it started from
    assert (run_dir / "smn.pt").is_symlink() and (run_dir / "smn.pt").resolve() == start_checkpoint.resolve()
    assert not load_sae(run_dir / "smpn.pt").has_discriminators


def test_a_stage_image_size_reaches_its_module_and_synthetic_set(tmp_path, start_checkpoint):
    """``model.smpn.data.image_size`` sizes that stage's module record and synthetic drawing, not the global 64."""
    data_dir, run_dir = tmp_path / "data", tmp_path / "logs" / "run"
    overrides = [
        "model=smpn",
        "trainer=debug",
        "callbacks.image_grid=null",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        "model.smpn.module.mask_head=null",
        "+model.smpn.data.image_size=128",
        "data.synthetic.n=12",
    ]
    cfg = compose_train(run_dir, data_dir, overrides)
    assert cfg.data.image_size == 64
    run(cfg)
    assert read_extra(run_dir / "smpn.pt")["image_size"] == 128
    assert json.loads((data_dir / "synthfaces" / "synthfaces.json").read_text())["size"] == 128


def test_zero_steps_from_a_trained_smpn_distil_a_new_mask_head_and_leave_its_weights(
    tmp_path, data_dir, start_checkpoint
):
    """README: a head that falls short is distilled again, with other settings, without training the SMPN:
    max_steps=0 (allowed with the quick start's lr_decay), the SMPN file given as the start."""
    run_dir = tmp_path / "logs" / "run"
    overrides = [
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        "model.smpn.trainer.max_steps=0",
        "model.smpn.module.mask_head.side_fraction=0.25",
        *BRIEF_MASK_HEAD,
    ]
    metrics = run(compose_train(run_dir, data_dir, overrides))
    exported, start = load_sae(run_dir / "smpn.pt"), load_sae(start_checkpoint)
    for name in ("G", "E"):
        before, after = getattr(start, name).state_dict(), getattr(exported, name).state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)
    head = read_extra(run_dir / "smpn.pt")["mask_head"]
    assert head["block"] == "UpsamplingResBlock16"  # 16 px, a quarter of the side (the quick start's reads 32 px)
    assert head["matte_iou"] == pytest.approx({roi: metrics[f"val/fast_matte_iou_{roi}"] for roi in ROI_NAMES})
    assert (run_dir / "smn.pt").resolve() == start_checkpoint.resolve()  # the SMN it started from
    # a run from that run's SMPN pairs with the same SMN, through run/smn.pt (a link)
    again = {"smpn": OmegaConf.create({"module": {"init_checkpoint": str(run_dir / "smpn.pt")}})}
    assert starting_smn(OmegaConf.create({"backbone": {}}), again) == start_checkpoint.resolve()


def test_ckpt_path_last_resumes_at_the_same_step_with_the_same_optimiser_state(tmp_path, data_dir):
    run_dir = tmp_path / "logs" / "run"
    common = [
        "model=smn",
        "model.smn.trainer.max_steps=8",  # 4 batches: a D step and a G step each
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.image_grid=null",
        "+callbacks.record._target_=train_helpers.RecordStart",
    ]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(
            compose_train(
                run_dir,
                data_dir,
                [*common, "+callbacks.crash._target_=train_helpers.CrashAfter", "+callbacks.crash.step=6"],
            )
        )
    last = run_dir / "checkpoints" / "smn" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 4  # the crash came before the step-6 checkpoint

    RecordStart.records.clear()
    run(compose_train(run_dir, data_dir, [*common, "ckpt_path=last"]))
    resumed = RecordStart.records[0]
    assert resumed["global_step"] == 4
    assert int(resumed["weights"]["sae.num_discriminator_iters"]) == 2
    for name, value in saved["state_dict"].items():
        assert torch.equal(resumed["weights"][name], value), name
    assert len(resumed["optimizers"]) == len(saved["optimizer_states"]) == 2
    for restored, stored in zip(resumed["optimizers"], saved["optimizer_states"]):
        assert restored["param_groups"] == stored["param_groups"]
        for index, state in stored["state"].items():
            for key, value in state.items():
                assert torch.equal(restored["state"][index][key], value), (index, key)
    assert torch.load(last, weights_only=True)["global_step"] == 8


def test_nan_guard_names_the_term_and_step_and_keeps_the_last_good_checkpoint(
    tmp_path, data_dir, start_checkpoint, monkeypatch
):
    eq2_losses = SMPNModule.eq2_losses

    def poisoned(self, images, roi_masks):
        losses, reconstruction, region_decodes = eq2_losses(self, images, roi_masks)
        if self.training and self.global_step == 3:
            losses["region"] = losses["region"] * float("nan")
        return losses, reconstruction, region_decodes

    monkeypatch.setattr(SMPNModule, "eq2_losses", poisoned)
    run_dir = tmp_path / "logs" / "run"
    overrides = [
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        "model.smpn.trainer.max_steps=10",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.image_grid=null",
    ]
    with pytest.raises(
        NonFiniteLossError, match=r"'region' = nan at global step 3 .*Last good checkpoint: .*last\.ckpt"
    ):
        run(compose_train(run_dir, data_dir, overrides))
    saved = torch.load(run_dir / "checkpoints" / "smpn" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    assert all(torch.isfinite(value).all() for value in saved["state_dict"].values() if value.is_floating_point())
    assert not (run_dir / "smpn.pt").exists()


def test_balanced_foreground_weights_make_roi_and_background_count_equally():
    roi_masks = torch.zeros(2, 2, 8, 8)
    roi_masks[:, 0, :4] = 1  # half the image
    roi_masks[:, 1, 0, :2] = 1  # 2 of 64 pixels
    weights = foreground_weights(roi_masks, "balanced")
    inside, outside = (weights * roi_masks).sum((0, 2, 3)), (weights * (1 - roi_masks)).sum((0, 2, 3))
    assert torch.allclose(inside, outside)
    assert torch.equal(foreground_weights(roi_masks, 1.0), torch.ones_like(roi_masks))  # Eq. 2 as published
    assert torch.equal(foreground_weights(roi_masks, 3.0).unique(), torch.tensor([1.0, 3.0]))


def test_lr_decay_follows_global_step_over_max_steps_for_every_optimiser(tmp_path, data_dir, start_checkpoint):
    RecordLearningRates.records.clear()
    overrides = [
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        "model.smpn.trainer.max_steps=4",
        "model.smpn.module.optimizer.lr=0.004",
        "model.smpn.module.lr_decay={kind: linear, final_fraction: 0.5}",
        "model.smpn.module.mask_head=null",
        "callbacks.image_grid=null",
        "+callbacks.lrs._target_=train_helpers.RecordLearningRates",
    ]
    run(compose_train(tmp_path / "logs" / "run", data_dir, overrides))
    assert torch.tensor(RecordLearningRates.records).allclose(torch.tensor([[0.004], [0.0035], [0.003], [0.0025]]))

    RecordLearningRates.records.clear()
    overrides = [
        "model=smn",
        "model.smn.trainer.max_steps=8",  # 4 batches of a D step and a G step
        "model.smn.module.lr_decay={kind: cosine}",
        "callbacks.image_grid=null",
        "+callbacks.lrs._target_=train_helpers.RecordLearningRates",
    ]
    run(compose_train(tmp_path / "logs" / "smn", data_dir, overrides))
    discriminator_lr = 0.002 * 16 / 17  # the lazy-R1 correction stays in the initial rate
    expected = [lr_decay_factor({"kind": "cosine", "final_fraction": 0.0}, step / 8) for step in (0, 2, 4, 6)]
    expected_lrs = torch.tensor([[0.002 * f, discriminator_lr * f] for f in expected], dtype=torch.float64)
    assert torch.tensor(RecordLearningRates.records, dtype=torch.float64).allclose(expected_lrs)


def test_lr_decay_needs_max_steps(tmp_path, data_dir, start_checkpoint):
    overrides = [
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start_checkpoint}",
        "model.smpn.trainer.max_steps=-1",
        "+model.smpn.trainer.max_epochs=1",
        "model.smpn.module.lr_decay={kind: cosine}",
        "callbacks.image_grid=null",
    ]
    with pytest.raises(
        ConfigError, match=r"model\.smpn\.module\.lr_decay: a decaying learning rate needs trainer\.max_steps"
    ):
        run(compose_train(tmp_path / "logs" / "run", data_dir, overrides))
    assert not (tmp_path / "logs" / "run" / "checkpoints").exists()  # refused before any training


def test_lr_decay_shapes_and_bad_settings():
    cosine, linear = {"kind": "cosine", "final_fraction": 0.1}, {"kind": "linear", "final_fraction": 0.0}
    assert [lr_decay_factor(cosine, p) for p in (0, 0.5, 1, 2)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert [lr_decay_factor(linear, p) for p in (0, 0.25, 1)] == pytest.approx([1.0, 0.75, 0.0])
    assert check_lr_decay(None) is None and check_lr_decay({"kind": "linear"})["final_fraction"] == 0.0
    with pytest.raises(ConfigError, match=r"lr_decay\.kind: .*'step'"):
        check_lr_decay({"kind": "step"})
    with pytest.raises(ConfigError, match=r"lr_decay\.final_fraction"):
        check_lr_decay({"kind": "cosine", "final_fraction": 2})
    with pytest.raises(ConfigError, match=r"unknown keys \['warmup'\]"):
        check_lr_decay({"kind": "cosine", "warmup": 10})


SMPN_LOSS = {
    "reconstruction": {"l1": 1.0, "lpips": 0.0},
    "region": {"l1": 1.0, "lpips": 0.5, "foreground_weight": "balanced"},
    "gan": 0.0,
    "r1": 10.0,
    "r1_every": 16,
    "lpips_net": "alex",
    "lpips_pretrained": True,
}


def test_smpn_loss_settings_become_a_dataclass():
    loss = SMPNLoss.from_config(SMPN_LOSS)
    assert loss.region.lpips == 0.5 and loss.foreground_weight == "balanced" and loss.uses_lpips
    assert SMPNLoss.from_config({**SMPN_LOSS, "region": {"l1": 2, "foreground_weight": 3}}).foreground_weight == 3.0


@pytest.mark.parametrize(
    "change, key",
    [
        ({"gan": -1}, r"loss\.smpn\.gan"),
        ({"r1_every": 0}, r"loss\.smpn\.r1_every"),
        ({"lpips_net": "squeeze"}, r"loss\.smpn\.lpips_net"),
        ({"region": {"l1": 1.0, "foreground_weight": 0}}, r"loss\.smpn\.region\.foreground_weight"),
        ({"reconstruction": {"l2": 1.0}}, r"loss\.smpn\.reconstruction: expected the keys l1, lpips"),
        ({"typo": 1}, r"loss\.smpn: expected the keys"),
    ],
)
def test_bad_smpn_loss_settings_name_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        SMPNLoss.from_config({**SMPN_LOSS, **change})


def test_a_failing_run_leaves_its_error_and_a_sweeper_gets_a_number_or_a_clear_error(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # as Hydra makes it
    with pytest.raises(ConfigError) as raised:
        run(compose_train(run_dir, data_dir, ["slicing.num_channels=4"]))
    failure = json.loads((run_dir / "failure.json").read_text())
    assert failure["error"] == f"ConfigError: {raised.value}" and "Traceback" in failure["traceback"]
    metrics = {"val/rec": 0.1, "val/mask_miou": 0.5}
    assert optimized_value(metrics, "val/mask_miou") == 0.5 and optimized_value(metrics, None) == metrics
    with pytest.raises(ConfigError, match=r"optimized_metric: 'val/miou' is not among this run's metrics \(val/rec, "):
        optimized_value(metrics, "val/miou")


def test_a_module_with_lr_decay_refuses_a_trainer_without_max_steps(tmp_path):
    """Library callers who build their own Trainer: the module checks the run's length when training starts."""
    smpn = SMPNModule(
        str(tiny_sae_file(tmp_path / "smn.pt")),
        TINY_SLICING.to_dict(),
        ROI_NAMES,
        L1_SMPN_LOSS,
        partial(torch.optim.Adam, lr=0.002),
        image_size=64,
        lr_decay={"kind": "linear"},
    )
    smpn.trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match=r"lr_decay: a decaying learning rate needs trainer\.max_steps"):
        smpn.on_train_start()


def test_the_metrics_summary_tables_the_regions_and_lines_up_the_rest():
    metrics = {"smn/val/rec_l1": 0.28374, "val/iou_hair": 0.8059, "val/iou_nose": 0.52359, "val/mask_miou": 0.66474}
    metrics |= {"val/fast_matte_iou_hair": 0.98057, "val/fast_matte_iou_nose": 0.977, "val/rec": 0.10576}
    assert metrics_summary(metrics).splitlines() == [
        "| region | mask IoU | cheap-mask matte IoU |",
        "| --- | --- | --- |",
        "| hair | 0.806 | 0.981 |",
        "| nose | 0.524 | 0.977 |",
        "| mean | 0.665 | n/a |",  # no val/fast_matte_iou
        "smn/val/rec_l1 0.2837 · val/rec 0.1058",
    ]
    assert metrics_summary({"val/rec_l1": 0.28374}) == "val/rec_l1 0.2837"  # the SMN alone: no regions


def test_the_smn_an_smpn_only_run_links_is_read_at_the_start_and_never_fails_the_run(tmp_path, caplog):
    smn = tiny_sae_file(tmp_path / "a" / "smn.pt")
    smpn = save_sae(SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False), tmp_path / "a" / "smpn.pt",
                    extra={"kind": "smpn"})  # fmt: skip
    cfg = OmegaConf.create({"backbone": {}})

    def pair(start, stages=("smpn",)):
        return starting_smn(
            cfg, {name: OmegaConf.create({"module": {"init_checkpoint": str(start)}}) for name in stages}
        )

    assert pair(smn) == smn.resolve() and pair(smpn) == smn.resolve()
    assert pair(smn, stages=("smn", "smpn")) is None  # the run trains its own SMN
    smn.unlink()
    (tmp_path / "a" / "smn.pt").symlink_to(tmp_path / "a" / "smn.pt")  # a link loop
    with caplog.at_level(logging.WARNING, logger="l2sae.training.run"):
        assert pair(smpn) is None and pair(tmp_path / "gone.pt") is None
    assert len(caplog.records) == 2 and all("no smn.pt link" in record.getMessage() for record in caplog.records)


def test_seed_null_records_the_seed_lightning_used(tmp_path, data_dir, monkeypatch):
    import yaml

    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    run_dir = tmp_path / "logs" / "run"
    with pytest.warns(UserWarning, match="No seed found, seed set to 0"):  # Lightning's
        run(compose_train(run_dir, data_dir, ["model=smn", "trainer=debug", "callbacks.image_grid=null", "seed=null"]))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 0  # Lightning's choice without a seed


def test_an_smpn_run_without_validation_exports_its_head_unmeasured(tmp_path, data_dir, start_checkpoint, caplog):
    """No validation batches: the head is exported without a recorded agreement (masks=auto then reads in full)."""
    run_dir = tmp_path / "logs" / "run"
    overrides = ["model=smpn", "model.smpn.trainer.max_steps=2", f"model.smpn.module.init_checkpoint={start_checkpoint}",
                 "++model.smpn.trainer.limit_val_batches=0", "callbacks.image_grid=null", *BRIEF_MASK_HEAD]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="l2sae.training.smpn"):
        run(compose_train(run_dir, data_dir, overrides))
    head = read_extra(run_dir / "smpn.pt")["mask_head"]
    assert head["block"] == "UpsamplingResBlock32" and head.get("matte_iou") is None
    assert "agreement with the full masks was not measured" in caplog.text
