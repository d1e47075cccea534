"""Sweeps that answer themselves (slow): a sweep whose first job fails goes on, and its jobs are reported side by
side from the run folders and from the W&B folders (offline); a three-trial Optuna search; the debug configs."""

import csv
import io
import json
import os
import shutil
import subprocess

import pytest
import yaml
from cli_helpers import run_script
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from train_helpers import BRIEF_MASK_HEAD, REPO, TINY_DATA, compose_train, tiny_sae_file

from l2sae.evaluation.run import run as evaluate
from l2sae.evaluation.sweep import read_sweep
from l2sae.evaluation.wandb_runs import read_wandb_run
from l2sae.nn import read_extra
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
    *BRIEF_MASK_HEAD,
]


# evaluate.py's settings for the sweep's jobs: one region, one timed image, no metric that needs weights
SMALL_EVALUATION = [
    "device=cpu",
    "rois=[hair]",
    "seeds=[0]",
    "global_edit=false",
    "timing.images=1",
    "timing.warmup=0",
    "metrics.fid.enabled=false",
    "metrics.lpips.enabled=false",
    "metrics.identity.enabled=false",
    "metrics.diversity.seeds=0",
    "metrics.swap_style.enabled=false",
    "structure_swap.enabled=false",
]


def compose_evaluate(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=list(overrides))


def python(script: str, arguments: list[str], tmp_path, wandb: str = "disabled") -> subprocess.CompletedProcess:
    """Run a root script as a user does: W&B ``wandb`` (disabled or offline), errors as one line (no
    HYDRA_FULL_ERROR)."""
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env.update(WANDB_MODE=wandb, PROJECT_ROOT=str(tmp_path))
    return run_script(REPO / script, arguments, cwd=tmp_path, env=env, timeout=600)


def test_a_sweep_whose_first_job_fails_goes_on_and_is_reported_also_from_its_wandb_folders(tmp_path):
    start = tiny_sae_file(tmp_path / "start.pt")
    sweep = ["-m", "slicing=sixteen,default,one_each", f"model.smpn.module.init_checkpoint={start}", *SHORT_SMPN]
    trained = python("train.py", [*sweep, "logger=wandb", "tags=[ablation]", *TINY_DATA], tmp_path, wandb="offline")
    # the sixteen-channel scheme does not fit an 8-channel SAE: one error line as the job fails, the next jobs
    # run, and the command names the failed job and exits 1 at the end
    assert trained.returncode == 1
    error = "error: slicing.num_channels: the scheme has 16 channels"
    assert trained.stderr.count(error) == 2 and "Traceback" not in trained.stderr
    assert "Error executing job with overrides: ['slicing=sixteen'" in trained.stderr
    (folder,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    for job, scheme in (("1", "default"), ("2", "one_each")):  # each finished job in its own folder
        with Image.open(folder / job / "learning_curves.png") as image:
            assert image.format == "PNG"
        expected = yaml.safe_load((REPO / "conf" / "slicing" / f"{scheme}.yaml").read_text())
        assert yaml.safe_load((folder / job / "config.yaml").read_text())["slicing"] == expected
        assert read_extra(folder / job / "smpn.pt")["slicing"]["channels"] == expected["channels"]

    # the report with each finished job's networks evaluated (sweep_evaluate; evaluate.py's settings, small)
    out = tmp_path / "report"
    cfg = compose_evaluate(
        f"sweep={folder}",
        "sweep_evaluate=true",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}",
        f"data.root={tmp_path / 'data' / 'synthfaces'}",  # the sweep's synthetic faces
        *TINY_DATA,
        *SMALL_EVALUATION,
    )
    summary = evaluate(cfg)
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [(row["job"], row["slicing"], row["tags"]) for row in rows] == [
        ("0", "sixteen", "ablation"),
        ("1", "default", "ablation"),
        ("2", "one_each", "ablation"),
    ]
    assert rows[0]["status"].startswith("failed: ConfigError: slicing.num_channels: the scheme has 16 channels")
    for row in rows[1:]:
        assert row["status"] == "finished"
        assert 0 <= float(row["val/mask_miou"]) <= 1 and float(row["val/rec"]) >= 0
        assert 0 <= float(row["evaluation/mask_iou"]) <= 1 and float(row["evaluation/time_median_s"]) > 0
        assert float(row["evaluation/leakage_ratio"]) >= 0 and float(row["evaluation/psnr_outside"]) > 0
    assert rows[0]["evaluation/mask_iou"] == ""  # the failed job has no networks to evaluate
    evaluated = json.loads((out / "jobs" / "1-1" / "evaluation.json").read_text())
    overall = next(row for row in evaluated["rows"] if row["method"] == "l2sae" and row["region"] == "all")
    assert overall["leakage_ratio"] == pytest.approx(float(rows[1]["evaluation/leakage_ratio"]))
    assert summary["best/evaluation/time_median_s"] == min(float(row["evaluation/time_median_s"]) for row in rows[1:])
    markdown = (out / "sweep.md").read_text()
    assert "- job 0 (slicing=sixteen): ConfigError: slicing.num_channels" in markdown
    for chart in ("sweep_iou.png", "sweep_curves.png"):
        with Image.open(out / chart) as image:
            assert image.format == "PNG"

    # a user with only the W&B folders of the finished jobs gets their rows, and logs the table to W&B
    synced = tmp_path / "synced"
    for job in ("1", "2"):
        shutil.copytree(folder / job / "wandb", synced / job, symlinks=True)
    reported = python("evaluate.py", [f"sweep={synced}", "logger=wandb"], tmp_path, wandb="offline")
    assert reported.returncode == 0, reported.stderr[-3000:]
    report = (tmp_path / "logs" / "evaluate" / "latest").resolve()
    assert f"Sweep report: {report}" in reported.stdout
    table = json.loads((report / "sweep.json").read_text())
    group = f"train-{folder.name}"
    assert [row["job"] for row in table["rows"]] == [f"{folder.name}-1", f"{folder.name}-2"]
    assert (report / "sweep.md").read_text().startswith(f"# Sweep {group}")
    for row, expected in zip(table["rows"], rows[1:]):
        for column in table["columns"][1:-2]:  # the same, less the evaluation's columns
            if isinstance(row[column], float):
                assert row[column] == pytest.approx(float(expected[column])), column
            else:
                assert row[column] == expected[column], column
        assert row["best_in"].split() == [name for name in expected["best_in"].split() if "evaluation/" not in name]
        assert row["status"] == "finished"
    assert read_sweep(synced)[0].curve == read_sweep(folder)[1].curve  # the CSV logger's curve, from W&B

    (logged,) = (report / "wandb").glob("offline-run-*")
    run = read_wandb_run(logged)
    assert run.group == group and run.exit_code == 0
    written = json.loads((logged / "files" / run.summary["sweep/jobs"]["path"]).read_text())
    assert written["columns"] == table["columns"]
    assert written["data"] == [[row[column] for column in table["columns"]] for row in table["rows"]]


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


OVERFIT = pytest.param(
    "overfit",
    ["model.smpn.trainer.max_epochs=2"],  # of its 10: the run is tested here, not how far the losses fall
    # Lightning turns the data module's shuffled order off itself, and says so
    marks=pytest.mark.filterwarnings("ignore:You requested to overfit but enabled train dataloader shuffling"),
)


@pytest.mark.parametrize(
    ("debug", "shorter"),
    [("default", []), ("fdr", []), ("limit", []), OVERFIT, ("profiler", [])],
    ids=["default", "fdr", "limit", "overfit", "profiler"],
)
def test_the_debug_configs_compose_and_run(tmp_path, data_dir, debug, shorter):
    start = tiny_sae_file(tmp_path / "start.pt")
    overrides = [
        f"debug={debug}",
        "model=smpn",
        f"model.smpn.module.init_checkpoint={start}",
        "callbacks.image_grid=null",
        *shorter,
    ]
    cfg = compose_train(tmp_path / "logs" / "run", data_dir, overrides)
    assert cfg.task_name == "debug" and cfg.trainer.detect_anomaly and cfg.data.num_workers == 0
    metrics = run(cfg)
    assert 0 <= metrics["val/mask_miou"] <= 1
