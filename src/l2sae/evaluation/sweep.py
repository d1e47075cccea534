"""A sweep's jobs side by side: ``python evaluate.py sweep=DIR`` (a multirun folder, W&B run folders, or a list).

Each job is read from its run folder: the overrides Hydra recorded (``.hydra/overrides.yaml``), its tags
(``config.yaml``), its final validation metrics (``metrics.json``), its learning curve (the CSV logger's
``metrics.csv``) or, for a job that failed, ``failure.json``. Without such folders, the jobs are read from
W&B run folders (``wandb/offline-run-*``, ``wandb/run-*`` of runs with ``logger=wandb``, found at any depth
under DIR; :mod:`l2sae.evaluation.wandb_runs`): overrides and tags from the run's config, the final
validation metrics from its summary, the learning curve from its history, the error of a failed job from its
summary's ``error``. The report (``sweep.md``, ``sweep.csv``,
``sweep.json``, ``sweep_iou.png``, ``sweep_curves.png``) has one row per job: the overrides that differ
between jobs, then the metrics, the best job marked per metric; jobs that failed or did not finish are listed
with their error. matplotlib is imported only when the charts are drawn (:mod:`l2sae.utils.curves`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from l2sae.evaluation.wandb_runs import WandbRun, is_wandb_run, read_wandb_run, wandb_run_folders
from l2sae.nn import CheckpointError, paired_smn
from l2sae.regions import ROI_NAMES
from l2sae.utils.curves import figure_to_png, learning_curve, plot_curves, pyplot
from l2sae.utils.errors import USER_ERRORS, ConfigError
from l2sae.utils.files import atomic_write_json, atomic_write_text
from l2sae.utils.tables import markdown_table

log = logging.getLogger(__name__)

MIOU = "val/mask_miou"
IOU_PREFIX = "val/iou_"
FAILURE_FILE = "failure.json"
# a metric whose name has one of these parts is better higher; the others (losses, L1, leakage, time, FID,
# LPIPS) are better lower
HIGHER_IS_BETTER = ("iou", "miou", "psnr", "ssim", "similarity", "accuracy", "diversity")
# with sweep_evaluate: the evaluation's scores of L2SAE over all regions that become columns (evaluation/<name>),
# those it computed
EVALUATION_METRICS = (
    "mask_iou",
    "leakage_ratio",
    "leakage_outside",
    "psnr_outside",
    "ssim_outside",
    "lpips_outside",
    "lpips",
    "fid",
    "kid",
    "identity_similarity",
    "diversity",
    "swap_lpips",
    "time_median_s",
)
# (SMN file, SMPN file, report folder) -> L2SAE's scores over all regions: evaluate.py's evaluation of a job
EvaluateNetworks = Callable[[Path, Path, Path], Mapping[str, float]]


@dataclass
class Job:
    """One job of a sweep, as its run folder tells it."""

    name: str
    folder: Path
    overrides: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation mIoU)
    error: str | None = None  # why the job has no metrics (failed, or did not finish)
    group: str = ""  # the W&B group of the job's run, when it was tracked with W&B
    not_evaluated: str | None = None  # with sweep_evaluate: why a finished job was not evaluated


def job_folders(sweep: str | Path | Sequence[str | Path]) -> list[Path]:
    """The job folders of a multirun folder (numbered sub-folders, in order), else the W&B run folders under
    it (oldest first), or a list of run folders (either kind)."""
    if isinstance(sweep, (str, Path)):
        folder = Path(sweep)
        if not folder.is_dir():
            raise ConfigError(f"sweep: {folder} is not a folder; give a multirun folder or a list of run folders")
        if is_job(folder) or is_wandb_run(folder):
            return [folder]
        jobs = [path for path in folder.iterdir() if path.is_dir() and is_job(path)]
        if not jobs:
            jobs = wandb_run_folders(folder)
            if jobs:
                return jobs
            raise ConfigError(
                f"sweep: {folder} holds no job folders (none has .hydra/, config.yaml or metrics.json) and no W&B "
                "run folders (wandb/offline-run-*/run-*.wandb)"
            )
        return sorted(
            jobs, key=lambda path: (not path.name.isdigit(), int(path.name) if path.name.isdigit() else 0, path.name)
        )
    folders = [Path(path) for path in sweep]
    missing = [str(path) for path in folders if not path.is_dir()]
    if missing or not folders:
        raise ConfigError(f"sweep: not run folders: {', '.join(missing) or 'an empty list'}")
    return folders


def is_job(folder: Path) -> bool:
    return any((folder / name).exists() for name in (".hydra", "config.yaml", "metrics.json", FAILURE_FILE))


def read_job(folder: Path, name: str) -> Job:
    """A job's overrides, tags, metrics, learning curve and error (see the module's docstring)."""
    if is_wandb_run(folder):
        return wandb_job(read_wandb_run(folder))
    job = Job(name=name, folder=folder)
    tracked = wandb_run_folders(folder / "wandb") if (folder / "wandb").is_dir() else []
    if tracked:
        job.group = read_wandb_run(tracked[-1]).group
    overrides_file = folder / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        for override in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = str(override).partition("=")
            job.overrides[key.lstrip("+~")] = value
    config_file = folder / "config.yaml"
    if config_file.is_file():
        job.tags = [str(tag) for tag in (yaml.safe_load(config_file.read_text()) or {}).get("tags") or []]
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        job.metrics = {key: float(value) for key, value in json.loads(metrics_file.read_text()).items()}
    elif (folder / FAILURE_FILE).is_file():
        job.error = json.loads((folder / FAILURE_FILE).read_text())["error"]
    else:
        job.error = "did not finish (no metrics.json, no failure.json)"
    job.curve = learning_curve(folder)
    return job


def wandb_job(run: WandbRun) -> Job:
    """A job as its W&B run recorded it: the overrides and tags that the run's config carries (tracking's
    ``wandb_identity``), the final validation metrics as ``metrics.json`` names them (the summary's last values;
    Lightning's stage prefixes ``smn-``: the last stage's dropped, earlier stages' as ``smn/``), the learning
    curve (validation mIoU against ``trainer/global_step``) and the error of a run that failed."""
    job = Job(name=run.name or run.run_id, folder=run.folder, group=run.group)
    for override in run.config.get("overrides") or []:
        key, _, value = str(override).partition("=")
        job.overrides[key.lstrip("+~")] = value
    job.tags = [str(tag) for tag in run.config.get("tags", run.tags) or []]
    stages: dict[str, None] = {}  # stage prefixes in the order their validation metrics first appear
    for row in run.history:
        stages.update(dict.fromkeys(stage for stage, _ in map(split_stage, row) if stage is not None))
    last = list(stages)[-1] if stages else ""
    miou = f"{last}-{MIOU}" if last else MIOU
    steps = [row.get("trainer/global_step", row.get("_step")) for row in run.history]
    job.curve = [(int(step), float(row[miou])) for step, row in zip(steps, run.history) if miou in row]
    if run.summary.get("error"):
        job.error = str(run.summary["error"])
    elif run.exit_code is None:
        job.error = "did not finish (its W&B run has no exit record)"
    elif run.exit_code != 0:
        job.error = f"its W&B run exited with status {run.exit_code}"
    if job.error is not None:
        return job  # what it logged before is not final
    for key, value in run.summary.items():
        stage, name = split_stage(key)
        if stage is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            job.metrics[name if stage == last else f"{stage}/{name}"] = float(value)
    if not job.metrics:
        job.error = "no validation metrics in its W&B run"
    return job


def split_stage(key: str) -> tuple[str | None, str]:
    """A logged name -> (stage prefix, or "" for none, and the metric); stage None for what is not a validation
    metric (``smpn-val/rec`` -> ``("smpn", "val/rec")``)."""
    stage, _, name = key.partition("-") if not key.startswith("val/") else ("", "", key)
    return (stage, name) if name.startswith("val/") else (None, key)


def read_sweep(sweep: str | Path | Sequence[str | Path]) -> list[Job]:
    folders = job_folders(sweep)
    names = [folder.name for folder in folders]
    if len(set(names)) < len(names):  # run folders of different sweeps may share a name
        names = [str(folder) for folder in folders]
    return [read_job(folder, name) for folder, name in zip(folders, names)]


def differing_overrides(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value is not the same in every job (in the order they first appear)."""
    keys = dict.fromkeys(key for job in jobs for key in job.overrides)
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def metric_columns(jobs: Sequence[Job]) -> list[str]:
    """The final-stage metrics (no ``stage/`` prefix): mean IoU, per-region IoU (in region order), then the
    others by name; evaluation metrics (``evaluation/...``) last, by name."""
    names = set(key for job in jobs for key in job.metrics)
    final = sorted(name for name in names if name.startswith("val/"))
    regions = {f"{IOU_PREFIX}{roi}": index for index, roi in enumerate(ROI_NAMES)}
    ious = sorted((name for name in final if name.startswith(IOU_PREFIX)), key=lambda name: regions.get(name, 99))
    order = [MIOU] * (MIOU in final) + ious
    order += [name for name in final if name not in order]
    return order + sorted(name for name in names if name.startswith("evaluation/"))


def higher_is_better(metric: str) -> bool:
    return any(part in HIGHER_IS_BETTER for part in metric.replace("/", "_").split("_"))


def best_jobs(jobs: Sequence[Job], metrics: Iterable[str]) -> dict[str, str]:
    """For every metric, the name of the job with the best value: NaN and infinities on the bad side are never
    best, an infinity on the good side is (PSNR outside the region is +inf where nothing outside changed); of equal
    values the first job's."""
    best = {}
    for metric in metrics:
        sign = 1.0 if higher_is_better(metric) else -1.0
        values = [(sign * job.metrics.get(metric, math.nan), job.name) for job in jobs]
        scored = [(value, name) for value, name in values if value > -math.inf]  # drops NaN and the bad infinity
        if scored:
            best[metric] = max(scored, key=lambda pair: pair[0])[1]  # a tie: the first job
    return best


def job_label(job: Job, keys: Sequence[str]) -> str:
    return " ".join(f"{key}={job.overrides.get(key, '-')}" for key in keys) or job.name


# ---- the report -----------------------------------------------------------------------------------------------
def report_rows(jobs: Sequence[Job]) -> tuple[list[str], list[dict]]:
    """The table's columns and one row per job (CSV and JSON use them as they are)."""
    keys, metrics = differing_overrides(jobs), metric_columns(jobs)
    best = best_jobs(jobs, metrics)
    tags = any(job.tags for job in jobs)
    columns = ["job", *keys, *(["tags"] if tags else []), *metrics, "best_in", "status"]
    rows = []
    for job in jobs:
        row = {"job": job.name, **{key: job.overrides.get(key, "") for key in keys}}
        if tags:
            row["tags"] = " ".join(job.tags)
        row.update({metric: job.metrics.get(metric) for metric in metrics})
        row["best_in"] = " ".join(metric for metric, name in best.items() if name == job.name)
        row["status"] = "finished" if job.error is None else f"failed: {job.error}"
        if job.not_evaluated:
            row["status"] += f"; not evaluated: {job.not_evaluated}"
        rows.append(row)
    return columns, rows


def markdown_report(jobs: Sequence[Job], sweep_name: str) -> str:
    columns, rows = report_rows(jobs)
    metrics = metric_columns(jobs)
    best = best_jobs(jobs, metrics)
    shown = [column for column in columns if column not in ("best_in", "status")]
    lines = [f"# Sweep {sweep_name}", "", f"{len(jobs)} jobs; the best value of each metric in **bold**.", ""]

    def cell(job: Job, column: str, value) -> str:
        if column not in metrics:
            return str(value)
        text = "n/a" if value is None else f"{value:.3f}"
        return f"**{text}**" if best.get(column) == job.name else text

    finished = [(job, row) for job, row in zip(jobs, rows) if job.error is None]
    lines.append(markdown_table(shown, ([cell(job, column, row[column]) for column in shown] for job, row in finished)))
    failed = [job for job in jobs if job.error is not None]
    if failed:
        lines += ["", "## Failed or unfinished jobs", ""]
        lines += [f"- job {job.name} ({job_label(job, differing_overrides(jobs))}): {job.error}" for job in failed]
    unevaluated = [job for job in jobs if job.not_evaluated]
    if unevaluated:
        lines += ["", "## Finished jobs not evaluated", ""]
        lines += [f"- job {job.name}: {job.not_evaluated}" for job in unevaluated]
    return "\n".join(lines) + "\n"


def csv_report(jobs: Sequence[Job]) -> str:
    columns, rows = report_rows(jobs)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_region_iou(jobs: Sequence[Job], path: Path) -> None:
    """Grouped bars: the IoU of every region (and the mean) per finished job."""
    finished = [job for job in jobs if job.error is None]
    metrics = [name for name in metric_columns(finished) if name.startswith(IOU_PREFIX)] + [MIOU]
    keys = differing_overrides(jobs)
    width = 0.8 / max(len(finished), 1)
    figure, axes = pyplot().subplots(figsize=(1.4 * len(metrics) + 2, 4))
    for index, job in enumerate(finished):
        values = [job.metrics.get(metric, math.nan) for metric in metrics]
        axes.bar([m + index * width for m in range(len(metrics))], values, width, label=job_label(job, keys))
    axes.set_xticks([m + width * (len(finished) - 1) / 2 for m in range(len(metrics))])
    axes.set_xticklabels([metric.removeprefix(IOU_PREFIX).replace("val/mask_miou", "mean") for metric in metrics])
    axes.set_ylabel("validation mask IoU")
    axes.set_ylim(0, 1)
    axes.legend(fontsize="small")
    figure_to_png(figure, path)


def plot_learning_curves(jobs: Sequence[Job], path: Path) -> None:
    """Validation mIoU against step, one line per job that logged it."""
    keys = differing_overrides(jobs)
    plot_curves({job_label(job, keys): job.curve for job in jobs}, path, ylabel=MIOU)


def write_sweep_report(jobs: Sequence[Job], out_dir: Path, sweep_name: str) -> dict[str, Path]:
    """Write the report's files into ``out_dir``; returns their paths by kind."""
    paths = {
        "markdown": out_dir / "sweep.md",
        "csv": out_dir / "sweep.csv",
        "json": out_dir / "sweep.json",
        "iou_chart": out_dir / "sweep_iou.png",
        "curves": out_dir / "sweep_curves.png",
    }
    atomic_write_text(paths["markdown"], markdown_report(jobs, sweep_name))
    atomic_write_text(paths["csv"], csv_report(jobs))
    columns, rows = report_rows(jobs)
    folders = {job.name: str(job.folder) for job in jobs}
    atomic_write_json(paths["json"], {"columns": columns, "rows": rows, "folders": folders})
    plot_region_iou(jobs, paths["iou_chart"])
    plot_learning_curves(jobs, paths["curves"])
    return paths


def job_networks(job: Job) -> tuple[Path, Path] | str:
    """The (SMN, SMPN) files of a finished job: its ``smpn.pt``, and its ``smn.pt`` or else the SMN that its SMPN
    stage's start file (``model.smpn.module.init_checkpoint`` of its ``config.yaml``) pairs with
    (:func:`~l2sae.nn.paired_smn`; a job folder older than the ``smn.pt`` link). A W&B run folder's are looked
    for in the run folder that holds its ``wandb/``. Returns why not when they are missing."""
    folders = [job.folder, *([job.folder.parent.parent] if job.folder.parent.name == "wandb" else [])]
    for folder in folders:
        smpn, smn = folder / "smpn.pt", folder / "smn.pt"
        if not smpn.is_file():
            continue
        if not smn.is_file() and (folder / "config.yaml").is_file():
            config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
            start = (((config.get("model") or {}).get("smpn") or {}).get("module") or {}).get("init_checkpoint")
            if start and not Path(start).is_file():
                return f"its SMN {start} does not exist"
            if start:
                try:
                    smn = paired_smn(start) or smn
                except (OSError, RuntimeError, CheckpointError) as error:  # a damaged file, a link loop
                    return f"its SMPN's start file {start} cannot be read ({error})"
        return (smn, smpn) if smn.is_file() else f"its SMN {smn} does not exist"
    return f"no smpn.pt in {' or '.join(str(folder) for folder in folders)}"


def evaluate_jobs(jobs: Sequence[Job], evaluate: EvaluateNetworks, out_dir: Path) -> None:
    """``sweep_evaluate``: evaluate every finished job's networks (:func:`job_networks`) with ``evaluate``, its
    report in ``out_dir/jobs/<index>-<job>``; the scores of :data:`EVALUATION_METRICS` join the job's metrics as
    ``evaluation/<name>``. A job without networks, or whose evaluation fails on its settings or files (a user
    error: its slicing lacks a region, a damaged checkpoint), keeps its row, the reason in ``not_evaluated``."""
    for index, job in enumerate(jobs):
        if job.error is not None:
            continue
        networks = job_networks(job)
        if isinstance(networks, str):
            job.not_evaluated = networks
            continue
        folder = out_dir / "jobs" / f"{index}-{Path(job.name).name}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            scores = evaluate(*networks, folder)
        except USER_ERRORS as error:
            job.not_evaluated = f"{type(error).__name__}: {error}"
            log.warning("job %s not evaluated: %s", job.name, job.not_evaluated)
            continue
        job.metrics.update({f"evaluation/{name}": float(scores[name]) for name in EVALUATION_METRICS if name in scores})


def log_sweep_table(loggers: Iterable, jobs: Sequence[Job]) -> None:
    """Send the table to every logger that has ``log_table`` (W&B)."""
    columns, rows = report_rows(jobs)
    data = [[row[column] for column in columns] for row in rows]
    for logger in loggers:
        if hasattr(logger, "log_table"):
            logger.log_table(key="sweep/jobs", columns=columns, data=data)


def summary(jobs: Sequence[Job]) -> dict[str, float]:
    """What ``evaluate.py sweep=...`` returns: each metric's best value."""
    best = best_jobs(jobs, metric_columns(jobs))
    by_name = {job.name: job for job in jobs}
    return {f"best/{metric}": by_name[name].metrics[metric] for metric, name in best.items()}


def run_sweep_report(cfg: Mapping, evaluate: EvaluateNetworks | None = None) -> dict[str, float]:
    """``python evaluate.py sweep=...``: read the jobs, evaluate their networks with ``evaluate`` when given
    (``sweep_evaluate=true``, :func:`evaluate_jobs`), write the report into the run folder, print it, link
    ``<log_dir>/evaluate/latest`` to the folder, log the table to W&B when the wandb logger is on (into the
    sweep's W&B group when its jobs were tracked with W&B and the logger names no group)."""
    from l2sae.utils.files import atomic_symlink
    from l2sae.utils.tracking import finish_wandb, instantiate_loggers

    sweep = cfg["sweep"]
    sweep = sweep if isinstance(sweep, str) else list(sweep)
    jobs = read_sweep(sweep)
    out_dir = Path(cfg["paths"]["output_dir"])
    if evaluate is not None:
        evaluate_jobs(jobs, evaluate, out_dir)
    groups = {job.group for job in jobs if job.group}
    group = groups.pop() if len(groups) == 1 else ""
    name = Path(sweep).name if isinstance(sweep, str) else f"of {len(jobs)} run folders"
    if group and all(is_wandb_run(job.folder) for job in jobs):
        name = group  # W&B run folders: the sweep's W&B group names it
    paths = write_sweep_report(jobs, out_dir, name)
    print(paths["markdown"].read_text())
    try:
        log_sweep_table(instantiate_loggers(cfg, wandb_group=group), jobs)
    finally:
        finish_wandb()
    latest = Path(cfg["paths"]["log_dir"]) / cfg["task_name"] / "latest"
    latest.parent.mkdir(parents=True, exist_ok=True)
    atomic_symlink(out_dir, latest)
    print(f"Sweep report: {out_dir}")
    return summary(jobs)
