"""The sweep report on run folders written the way training leaves them (metrics.json, .hydra/overrides.yaml,
the CSV logger's metrics.csv, failure.json)."""

import csv
import io
import json

import pytest
import yaml
from PIL import Image

from l2sae.evaluation.sweep import read_sweep, run_sweep_report
from l2sae.regions import ROI_NAMES
from l2sae.utils.errors import ConfigError


def fake_job(folder, overrides, metrics=None, error=None, curve=(), tags=()):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (folder / "config.yaml").write_text(yaml.safe_dump({"tags": list(tags)}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (folder / "failure.json").write_text(json.dumps({"error": error}))
    if curve:
        log = folder / "csv" / "version_1" / "metrics.csv"
        log.parent.mkdir(parents=True)
        lines = ["smpn-train/rec,smpn-val/mask_miou,step"]
        lines += [f"0.5,,{step - 1}\n,{value},{step}" for step, value in curve]
        log.write_text("\n".join(lines) + "\n")


def metrics(miou, rec):
    values = {f"val/iou_{roi}": miou + 0.01 * index for index, roi in enumerate(ROI_NAMES)}
    return {"smn/val/rec_l1": 0.3, **values, "val/mask_miou": miou, "val/rec": rec, "val/region": 1 + rec}


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    fake_job(folder / "0", ["slicing=default", "seed=1"], metrics(0.6, 0.2), curve=[(4, 0.3), (8, 0.6)], tags=["a"])
    fake_job(folder / "1", ["slicing=one_each", "seed=1"], metrics(0.5, 0.1), curve=[(4, 0.2), (8, 0.5)])
    fake_job(folder / "2", ["slicing=bad", "seed=1"], error="ConfigError: slicing.channels.hair: out of range")
    (folder / "multirun.yaml").write_text("{}")
    return folder


def test_the_report_puts_the_jobs_side_by_side_and_names_the_failure(sweep, tmp_path):
    out = tmp_path / "logs" / "evaluate" / "runs" / "now"
    cfg = {"sweep": str(sweep), "paths": {"output_dir": str(out), "log_dir": str(tmp_path / "logs")}}
    best = run_sweep_report({**cfg, "task_name": "evaluate", "logger": None})
    assert best["best/val/mask_miou"] == 0.6 and best["best/val/iou_eyes"] == 0.63  # IoU: highest
    assert best["best/val/rec"] == 0.1 and best["best/val/region"] == 1.1  # losses: lowest

    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [row["job"] for row in rows] == ["0", "1", "2"]
    assert [row["slicing"] for row in rows] == ["default", "one_each", "bad"]
    assert "seed" not in rows[0]  # the same in every job
    assert rows[0]["tags"] == "a" and float(rows[0]["val/iou_hair"]) == 0.6
    assert "val/mask_miou" in rows[0]["best_in"].split() and "val/rec" in rows[1]["best_in"].split()
    assert rows[2]["status"] == "failed: ConfigError: slicing.channels.hair: out of range"

    markdown = (out / "sweep.md").read_text()
    assert "| job | slicing | tags | val/mask_miou |" in markdown
    assert "| 0 | default | a | **0.600** |" in markdown and "| 1 | one_each |  | 0.500 |" in markdown
    assert "- job 2 (slicing=bad): ConfigError: slicing.channels.hair: out of range" in markdown
    for chart in ("sweep_iou.png", "sweep_curves.png"):
        with Image.open(out / chart) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert (tmp_path / "logs" / "evaluate" / "latest").resolve() == out.resolve()
    assert json.loads((out / "sweep.json").read_text())["folders"]["1"] == str(sweep / "1")


def test_learning_curves_come_from_the_last_stages_csv_log(sweep):
    jobs = read_sweep(sweep)
    assert jobs[0].curve == [(4, 0.3), (8, 0.6)] and jobs[2].curve == []
    unfinished = sweep / "3"
    fake_job(unfinished, ["slicing=sixteen", "seed=1"])
    assert read_sweep([sweep / "0", unfinished])[1].error.startswith("did not finish")


def test_a_folder_without_jobs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sweep: .* holds no job folders"):
        read_sweep(tmp_path)
    with pytest.raises(ConfigError, match="sweep: not run folders: .*nowhere"):
        read_sweep([tmp_path / "nowhere"])
