"""End-to-end training runs (slow): the quick-start pipeline cut short, DDP on two CPU processes (sweeps:
test_train_sweeps.py)."""

import json
import os
import warnings

import pytest
import torch
import yaml
from PIL import Image
from train_helpers import BRIEF_MASK_HEAD, compose_train, tiny_sae_file

from l2sae.nn import load_sae, read_extra
from l2sae.regions import ROI_NAMES
from l2sae.training import run

pytestmark = pytest.mark.slow


def test_smoke_pipeline_leaves_a_complete_run_folder(tmp_path, capsys, caplog):
    run_dir = tmp_path / "logs" / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = run(compose_train(run_dir, tmp_path / "data", ["experiment=smoke"]))
    # Lightning's notices that say nothing about the run stay out of its output
    assert not [warning for warning in caught if "LeafSpec" in str(warning.message)]
    assert not [message for message in caplog.messages if "litlogger" in message]
    assert "GPU available: False" in caplog.text  # (Lightning's other notices still reach the log)
    # the run ends with its metrics (a table of the regions' IoU, then the rest) and its folder
    printed = capsys.readouterr().out
    summary = printed[printed.rindex("Final validation metrics (metrics.json):") :].splitlines()
    assert summary[1].startswith("| region | mask IoU |") and summary[-1] == f"Run folder: {run_dir}"
    ious = {**{roi: metrics[f"val/iou_{roi}"] for roi in ROI_NAMES}, "mean": metrics["val/mask_miou"]}
    for line, (roi, iou) in zip(summary[3:], ious.items(), strict=False):
        assert line.startswith(f"| {roi} | {iou:.3f} |")
    assert f"smn/val/rec_l1 {metrics['smn/val/rec_l1']:.4g}" in summary[-2]
    assert "smn/val/rec_l1" in metrics and "val/mask_miou" in metrics
    assert {f"val/iou_{roi}" for roi in ROI_NAMES} <= set(metrics)
    assert json.loads((run_dir / "metrics.json").read_text()) == pytest.approx(metrics)
    resolved = (run_dir / "config.yaml").read_text()
    assert "${" not in resolved and yaml.safe_load(resolved)["model"]["smpn"]["module"]["init_checkpoint"] == str(
        run_dir / "smn.pt"
    )
    assert read_extra(run_dir / "smn.pt")["kind"] == "smn"
    smpn = load_sae(run_dir / "smpn.pt", with_discriminators=False)
    assert smpn.config.crop_size == 64 and read_extra(run_dir / "smpn.pt")["roi_names"] == list(ROI_NAMES)
    for stage in ("smn", "smpn"):
        assert (run_dir / "checkpoints" / stage / "last.ckpt").is_file()
    columns = 2 + len(ROI_NAMES) + 2  # input | reconstruction | ROI decodes | masks | edit
    rows = 2  # the first validation batch (2 images here; up to callbacks.image_grid.num_images)
    assert Image.open(run_dir / "grid.png").size == (columns * 66 + 2, rows * 66 + 2)
    assert os.readlink(tmp_path / "logs" / "latest") == "run"


def test_ddp_on_two_cpu_processes_keeps_the_weights_identical_the_data_and_randomness_apart(tmp_path):
    start = tiny_sae_file(tmp_path / "start.pt")
    overrides = [
        "model=smn",
        f"backbone.checkpoint={start}",
        "loss.sae.r1_every=2",  # the lazy R1 step runs too
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp_fork_find_unused_parameters_true",  # forked ranks keep the imports (spawn: +8 s)
        "model.smn.trainer.max_steps=5",  # D, R1 (2nd D step), G over two batches
        "trainer.limit_val_batches=1",
        "callbacks.image_grid=null",
        "+callbacks.dump._target_=train_helpers.DumpRankWeights",
        f"+callbacks.dump.folder={tmp_path}",
    ]
    run(compose_train(tmp_path / "logs" / "run", tmp_path / "data", overrides))
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))
    initial = load_sae(start).state_dict()
    assert int(rank0["num_discriminator_iters"]) == 2
    draws = rank0.pop("draw"), rank1.pop("draw")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert not torch.equal(*draws)  # each rank its own noise, crops and flips
    paths = [json.loads((tmp_path / f"paths{rank}.json").read_text()) for rank in (0, 1)]
    assert len(paths[0]) == len(paths[1]) == 2  # two batches (5 optimiser steps)
    for step, (seen0, seen1) in enumerate(zip(*paths)):
        assert not set(seen0) & set(seen1), step  # the shares of one training order: no image on both ranks
    assert not torch.equal(rank0["G.ToRGB.bias"], initial["G.ToRGB.bias"])  # they trained
    assert not torch.equal(rank0["D.stylegan2_D.final_linear.1.bias"], initial["D.stylegan2_D.final_linear.1.bias"])


def test_an_smpn_trained_in_forked_ranks_exports_its_mask_head_with_its_agreement(tmp_path):
    """fork/spawn ranks hand back only the weights: the head is distilled, and its agreement recorded, in the
    exporting process."""
    start = tiny_sae_file(tmp_path / "start.pt")
    overrides = [
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp_fork_find_unused_parameters_true",
        "model.smpn.trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "callbacks.image_grid=null",
        *BRIEF_MASK_HEAD,
    ]
    run_dir = tmp_path / "logs" / "run"
    metrics = run(compose_train(run_dir, tmp_path / "data", overrides))
    head = read_extra(run_dir / "smpn.pt")["mask_head"]
    assert head["matte_iou"] == pytest.approx({roi: metrics[f"val/fast_matte_iou_{roi}"] for roi in ROI_NAMES})
