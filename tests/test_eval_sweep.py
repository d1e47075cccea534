"""The sweep report on run folders written the way training leaves them (metrics.json, .hydra/overrides.yaml,
the CSV logger's metrics.csv, failure.json), and on W&B run folders (their transaction logs)."""

import csv
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
import yaml
from PIL import Image
from train_helpers import tiny_sae_file

from l2sae.evaluation.sweep import Job, best_jobs, evaluate_jobs, read_sweep, report_rows, run_sweep_report
from l2sae.evaluation.wandb_runs import read_wandb_run
from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
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


def test_the_best_job_may_have_the_good_infinity_never_the_bad_one_or_nan():
    inf, nan = float("inf"), float("nan")
    psnr, leakage = "evaluation/psnr_outside", "evaluation/leakage_ratio"  # higher / lower is better
    jobs = [
        Job("a", Path("a"), metrics={psnr: 31.0, leakage: inf}),
        Job("b", Path("b"), metrics={psnr: inf, leakage: nan}),
        Job("c", Path("c"), metrics={psnr: nan, leakage: 0.2}),
        Job("d", Path("d"), metrics={psnr: inf, leakage: 0.2}),
    ]
    assert best_jobs(jobs, [psnr, leakage]) == {psnr: "b", leakage: "c"}  # ties: the first job
    assert best_jobs(jobs[:2], [leakage]) == {}  # only the bad infinity and NaN: no best


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


# ---- W&B run folders ------------------------------------------------------------------------------------------
def write_wandb_log(path, records):
    """A W&B transaction log as W&B writes it: the header, then each record in CRC-checked chunks that never cross
    a 32 KiB block (FULL, or FIRST, MIDDLE..., LAST)."""
    data = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for record in records:
        payload, first = record.SerializeToString(), True
        while first or payload:
            room = 32768 - len(data) % 32768
            if room < 7:
                data += bytes(room)
                continue
            chunk, payload = payload[: room - 7], payload[room - 7 :]
            kind = (1 if not payload else 2) if first else (4 if not payload else 3)
            data += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind) + chunk
            first = False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))


def wandb_records(name, overrides, history, summary, exit_code=0, note=""):
    from wandb.proto import wandb_internal_pb2 as pb

    run = pb.Record()
    run.run.run_id, run.run.display_name, run.run.run_group = name, name, "train-sweep"
    run.run.tags.extend(["slicing=x"])
    for key, value in {"overrides": overrides, "tags": ["ablation"], "note": note}.items():
        run.run.config.update.add(key=key, value_json=json.dumps(value))
    records = [run]
    for row in history:
        record = pb.Record()
        for key, value in row.items():
            record.history.item.add(nested_key=[key], value_json=json.dumps(value))
        records.append(record)
    record = pb.Record()
    for key, value in summary.items():
        record.summary.update.add(nested_key=key.split("."), value_json=json.dumps(value))
    records.append(record)
    if exit_code is not None:
        record = pb.Record()
        record.exit.exit_code = exit_code
        records.append(record)
    return records


def test_jobs_are_read_from_wandb_run_folders(tmp_path):
    history = [
        {"smn-val/rec_l1": 0.4, "trainer/global_step": 2},
        {"smpn-val/mask_miou": 0.2, "smpn-train/rec": 0.5, "trainer/global_step": 3},
        {"smpn-val/mask_miou": 0.4, "smpn-val/iou_hair": 0.5, "trainer/global_step": 6},
    ]
    summary = {"smn-val/rec_l1": 0.4, "smpn-val/mask_miou": 0.4, "smpn-val/iou_hair": 0.5, "smpn-train/rec": 0.5}
    summary["_wandb.runtime"] = 3  # a nested key
    finished = tmp_path / "wandb" / "offline-run-20260101_000001-aaaa" / "run-aaaa.wandb"
    long_note = "x" * 70000  # a record over two 32 KiB blocks
    write_wandb_log(finished, wandb_records("s-0", ["slicing=default", "seed=1"], history, summary, note=long_note))
    failed = tmp_path / "elsewhere" / "wandb" / "run-20260101_000002-bbbb" / "run-bbbb.wandb"
    error = {"error": "ConfigError: slicing.channels.hair: out of range", "val/mask_miou": 0.9}  # not final
    write_wandb_log(failed, wandb_records("s-1", ["slicing=bad", "seed=1"], [], error, exit_code=1))
    unfinished = tmp_path / "wandb" / "offline-run-20260101_000003-cccc" / "run-cccc.wandb"
    write_wandb_log(unfinished, wandb_records("s-2", ["slicing=one_each", "seed=1"], history[:2], {}, exit_code=None))
    (tmp_path / "wandb" / "latest-run").symlink_to(unfinished.parent)  # W&B's link: not a run of its own

    jobs = read_sweep(tmp_path)
    assert [job.name for job in jobs] == ["s-0", "s-1", "s-2"]  # oldest first
    assert jobs[0].overrides == {"slicing": "default", "seed": "1"} and jobs[0].tags == ["ablation"]
    assert jobs[0].group == "train-sweep" and jobs[0].error is None
    # named as metrics.json names them: the last stage's prefix dropped, earlier stages' as "stage/"
    assert jobs[0].metrics == {"smn/val/rec_l1": 0.4, "val/mask_miou": 0.4, "val/iou_hair": 0.5}
    assert jobs[0].curve == [(3, 0.2), (6, 0.4)]
    assert jobs[1].error == "ConfigError: slicing.channels.hair: out of range" and jobs[1].metrics == {}
    assert jobs[2].error.startswith("did not finish")
    assert read_wandb_run(finished.parent).config["note"] == long_note

    complete = finished.read_bytes()
    finished.write_bytes(complete[:-3])  # read while W&B writes: the records so far, the run not finished
    assert read_sweep([finished.parent])[0].error.startswith("did not finish")
    damaged = bytearray(complete)
    damaged[40] ^= 1
    finished.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"run-aaaa\.wandb: damaged record at byte"):
        read_sweep([finished.parent])
    finished.write_bytes(b"LevelDB?" + bytes(damaged[8:]))
    with pytest.raises(ValueError, match=r"run-aaaa\.wandb: not a W&B transaction log of a known version"):
        read_sweep([finished.parent])


def test_sweep_evaluate_scores_each_finished_jobs_networks(sweep, tmp_path):
    (sweep / "0" / "smn.pt").write_bytes(b"smn")
    (sweep / "0" / "smpn.pt").write_bytes(b"smpn")
    start = tiny_sae_file(tmp_path / "start.pt")  # job 1 trained only the SMPN, from this SMN
    (sweep / "1" / "smpn.pt").write_bytes(b"smpn")
    config = {"tags": [], "model": {"smpn": {"module": {"init_checkpoint": str(start)}}}}
    (sweep / "1" / "config.yaml").write_text(yaml.safe_dump(config))
    earlier = tmp_path / "earlier"  # job 5 distilled a head again from an earlier run's SMPN: that run's SMN pairs
    earlier.mkdir()
    tiny_sae_file(earlier / "smn.pt")
    save_sae(SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False), earlier / "smpn.pt",
             extra={"kind": "smpn"})  # fmt: skip
    redistilled = tmp_path / "redistilled"
    redistilled.mkdir()
    (redistilled / "smpn.pt").write_bytes(b"smpn")
    config["model"]["smpn"]["module"]["init_checkpoint"] = str(earlier / "smpn.pt")
    (redistilled / "config.yaml").write_text(yaml.safe_dump(config))
    (sweep / "3" / "wandb" / "offline-run-1").mkdir(parents=True)  # a W&B run folder finds its job's networks
    (sweep / "3" / "smpn.pt").write_bytes(b"smpn")
    (sweep / "3" / "smn.pt").write_bytes(b"smn")
    calls = []

    (sweep / "4").mkdir()
    (sweep / "4" / "smn.pt").write_bytes(b"smn")
    (sweep / "4" / "smpn.pt").write_bytes(b"damaged")

    def evaluate(smn, smpn, folder):
        calls.append((smn, smpn, folder.relative_to(tmp_path)))
        if smpn.read_bytes() == b"damaged":
            raise ConfigError("rois: unknown region 'eyes'")
        return {"leakage_ratio": 0.1 * len(calls), "time_median_s": 0.5, "leakage_pairs": 8}

    jobs = read_sweep(sweep)
    jobs.append(Job("w", sweep / "3" / "wandb" / "offline-run-1"))
    jobs.append(Job("gone", tmp_path / "gone"))  # finished, but its networks were deleted
    jobs.append(Job("bad", sweep / "4"))  # its evaluation fails on its settings: the other jobs are still scored
    jobs.append(Job("redistilled", redistilled))
    evaluate_jobs(jobs, evaluate, tmp_path / "out")
    assert calls[:3] == [
        (sweep / "0" / "smn.pt", sweep / "0" / "smpn.pt", Path("out/jobs/0-0")),
        (start.resolve(), sweep / "1" / "smpn.pt", Path("out/jobs/1-1")),
        (sweep / "3" / "smn.pt", sweep / "3" / "smpn.pt", Path("out/jobs/3-w")),
    ]  # not the failed job 2
    assert calls[4] == ((earlier / "smn.pt").resolve(), redistilled / "smpn.pt", Path("out/jobs/6-redistilled"))
    assert jobs[5].not_evaluated == "ConfigError: rois: unknown region 'eyes'" and not jobs[5].metrics
    assert jobs[1].metrics["evaluation/leakage_ratio"] == 0.2 and "evaluation/leakage_pairs" not in jobs[1].metrics
    assert jobs[4].not_evaluated.startswith("no smpn.pt in")
    columns, rows = report_rows(jobs)
    assert columns[-4:] == ["evaluation/leakage_ratio", "evaluation/time_median_s", "best_in", "status"]
    assert "evaluation/leakage_ratio" in rows[0]["best_in"].split()  # leakage: lower is better
    assert rows[4]["status"].startswith("finished; not evaluated: no smpn.pt in")
    assert rows[5]["status"] == "finished; not evaluated: ConfigError: rois: unknown region 'eyes'"


def test_sweep_evaluate_must_be_true_or_false(sweep):
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    import l2sae.evaluation.run  # noqa: F401 (registers evaluate.yaml's schema, which types sweep_evaluate)

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="sweep_evaluate=maybe") as caught:
            compose("evaluate", overrides=[f"sweep={sweep}", "sweep_evaluate=maybe"])
    assert caught.value.__cause__.full_key == "sweep_evaluate"
    assert "Value 'maybe' is not a valid bool" in str(caught.value.__cause__)
