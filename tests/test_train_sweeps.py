"""Sweeps that answer themselves (slow): a two-job sweep with a failing job reported side by side, a three-trial
Optuna search, the debug configs."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from PIL import Image
from train_helpers import REPO, TINY_DATA, compose_train, tiny_sae_file

from l2sae.training import run

pytestmark = pytest.mark.slow

SHORT_SMPN = [
    "model=smpn",
    "model.smpn.trainer.max_steps=4",
    "model.smpn.trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "callbacks.image_grid=null",
    "callbacks.progress_bar=null",
    "num_threads=1",
]


def python(script: str, arguments: list[str], tmp_path, extra_path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PROJECT_ROOT": str(tmp_path)}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([extra_path, env.get("PYTHONPATH", "")])
    command = [sys.executable, str(REPO / script), *arguments]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_a_sweep_with_a_failing_job_reports_the_other_jobs_and_names_the_failure(tmp_path):
    start = tiny_sae_file(tmp_path / "start.pt")
    sweep = ["-m", "slicing=default,one_each,sixteen", f"model.smpn.module.init_checkpoint={start}", *SHORT_SMPN]
    trained = python("train.py", [*sweep, "tags=[ablation]", *TINY_DATA], tmp_path)
    assert trained.returncode != 0  # the sixteen-channel scheme does not fit an 8-channel SAE
    assert "slicing.num_channels: the scheme has 16 channels" in trained.stderr
    (folder,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    for job in ("0", "1"):
        with Image.open(folder / job / "learning_curves.png") as image:
            assert image.format == "PNG"

    reported = python("evaluate.py", [f"sweep={folder}"], tmp_path)
    assert reported.returncode == 0, reported.stderr[-3000:]
    out = (tmp_path / "logs" / "evaluate" / "latest").resolve()
    assert f"Sweep report: {out}" in reported.stdout
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [(row["job"], row["slicing"], row["tags"]) for row in rows] == [
        ("0", "default", "ablation"),
        ("1", "one_each", "ablation"),
        ("2", "sixteen", "ablation"),
    ]
    for row in rows[:2]:
        assert row["status"] == "finished"
        assert 0 <= float(row["val/mask_miou"]) <= 1 and float(row["val/rec"]) >= 0
    assert rows[2]["status"].startswith("failed: ConfigError: slicing.num_channels: the scheme has 16 channels")
    markdown = (out / "sweep.md").read_text()
    assert "- job 2 (slicing=sixteen): ConfigError: slicing.num_channels" in markdown
    for chart in ("sweep_iou.png", "sweep_curves.png"):
        with Image.open(out / chart) as image:
            assert image.format == "PNG"
    assert json.loads((out / "sweep.json").read_text())["columns"][:2] == ["job", "slicing"]


def test_a_three_trial_optuna_search_names_the_best_trial(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the search extra is not installed")
    start = tiny_sae_file(tmp_path / "start.pt")
    search = [
        "hparams_search=smpn_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"model.smpn.module.init_checkpoint={start}",
        *SHORT_SMPN,
        *TINY_DATA,
    ]
    searched = python("train.py", search, tmp_path)
    assert searched.returncode == 0, searched.stderr[-3000:]
    (folder,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {
        "model.smpn.module.optimizer.lr",
        "model.smpn.module.mask_threshold",
        "loss.smpn.region.foreground_weight",
    }
    trials = [json.loads((folder / str(job) / "metrics.json").read_text())["val/mask_miou"] for job in range(3)]
    assert results["best_value"] == pytest.approx(max(trials))


@pytest.mark.parametrize("debug", ["default", "fdr", "limit", "overfit", "profiler"])
def test_the_debug_configs_compose_and_run(tmp_path, debug):
    start = tiny_sae_file(tmp_path / "start.pt")
    overrides = [
        f"debug={debug}",
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start}",
        "callbacks.image_grid=null",
    ]
    cfg = compose_train(tmp_path / "logs" / "run", tmp_path / "data", overrides)
    assert cfg.task_name == "debug" and cfg.trainer.detect_anomaly and cfg.data.num_workers == 0
    metrics = run(cfg)
    assert 0 <= metrics["val/mask_miou"] <= 1
