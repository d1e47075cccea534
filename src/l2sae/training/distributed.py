"""One run across processes and nodes: a shared run identity, rank-0-only writes, the stage hand-off by broadcast.

Before the process group exists, the launcher's environment says which process is global rank 0
(:func:`launched_as_rank_zero`) and, where it has one, the job's id (:func:`launcher_job_id`); the Hydra
resolvers registered here use both, so the run folder of a SLURM or torchrun job is named after the job on
every node and only rank 0 writes Hydra's files. Once the process group exists, rank 0's run folder is
broadcast (:class:`RunFolderAgreement`) and each later stage starts from rank 0's export, which reaches every
rank by broadcast where its file cannot be read (:func:`receive_handoff`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# variables through which launchers give a process its rank (torchrun, SLURM's srun, Lightning's own start)
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK")


def launched_as_rank_zero() -> bool:
    """Whether the launcher started this process as global rank 0 (true for a single process)."""
    return all(int(os.environ.get(name) or 0) == 0 for name in RANK_VARIABLES)


def launcher_job_id() -> str | None:
    """A name every process of a multi-process job shares: ``slurm-<job>.<step>`` under SLURM (an array task:
    ``slurm-<job>_<task>.<step>``), ``torchrun-<run id>`` under torchrun with a run id, else None."""
    if int(os.environ.get("SLURM_NTASKS") or 1) > 1 and os.environ.get("SLURM_JOB_ID"):
        job = os.environ["SLURM_JOB_ID"]
        if os.environ.get("SLURM_ARRAY_TASK_ID"):
            job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', job)}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        return f"slurm-{job}.{os.environ.get('SLURM_STEP_ID', '0')}"
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none" and int(os.environ.get("WORLD_SIZE") or 1) > 1:
        return f"torchrun-{run_id}"
    return None


def register_resolvers() -> None:
    """``${l2sae.run_name:<fallback>}``: the launcher's job id, else the fallback (a time stamp);
    ``${l2sae.on_rank_zero:<value>,<otherwise>}``: the value on global rank 0, the other one elsewhere."""
    OmegaConf.register_new_resolver("l2sae.run_name", lambda fallback: launcher_job_id() or fallback, replace=True)
    OmegaConf.register_new_resolver(
        "l2sae.on_rank_zero", lambda value, otherwise: value if launched_as_rank_zero() else otherwise, replace=True
    )


register_resolvers()


def global_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def split_random_streams(rank: int, world_size: int) -> int:
    """Give this rank random streams of its own (torch on the CPU and every CUDA device, numpy, python), seeded
    from a number drawn from its current torch stream and the rank: at the first stage's start that stream is the
    same on every rank (the run's seed, or rank 0's states that a resume restores), later the ranks' own. Without
    it every rank draws the same noise maps, patch crops and flips in every step, a world_size-fold loss of their
    variety. Returns the rank's seed."""
    shared = int(torch.randint(0, 2**62, ()))
    seed = int(torch.randint(0, 2**62, (world_size,), generator=torch.Generator().manual_seed(shared))[rank])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return seed


class RunFolderAgreement(pl.Callback):
    """Once the process group exists: every rank learns rank 0's run folder (``run_dir``), and a resumed fit
    must start from the same checkpoint at the same step on every rank."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = str(run_dir)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.run_dir = trainer.strategy.broadcast(self.run_dir)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size == 1 or not dist.is_initialized():
            return
        starts = [None] * trainer.world_size
        dist.all_gather_object(starts, (trainer.global_step, str(trainer.ckpt_path)))
        if len(set(starts)) > 1:
            found = "; ".join(f"rank {rank}: step {step} from {path}" for rank, (step, path) in enumerate(starts))
            raise RuntimeError(
                f"ckpt_path: the ranks resume from different checkpoints ({found}). Resuming a multi-node run "
                "needs its run folder on a file system every node sees (or a copy at the same path on every node); "
                "give hydra.run.dir=<the interrupted run's folder> on every node"
            )


def adopt_run_folder(cfg: DictConfig, agreed: str) -> None:
    """Point ``cfg.paths.output_dir`` (and so every path under it) at rank 0's run folder ``agreed``; a rank
    that had a folder of its own removes it, with its parents up to ``paths.log_dir``, where they are empty."""
    own = Path(cfg.paths.output_dir)
    if own == Path(agreed):
        return
    with open_dict(cfg):
        cfg.paths.output_dir = agreed
    log.info(f"rank {global_rank()}: the run folder is rank 0's {agreed}")
    log_dir = Path(cfg.paths.log_dir).resolve()
    for folder in (own, *own.parents):
        if folder.resolve() == log_dir or log_dir not in folder.resolve().parents:
            break
        try:
            folder.rmdir()
        except OSError:
            break


def file_digest(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes, or None if it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


@contextmanager
def handoff(strategy, path: str) -> Iterator[str]:
    """The file an earlier stage exported on rank 0 (``path``), readable on this rank while the context lasts.

    Rank 0 broadcasts the file's SHA-256. Where every rank reads the same bytes at ``path`` (a shared file
    system), that file is used; otherwise rank 0 broadcasts the bytes and each other rank keeps them in a
    temporary folder of its own (outside the run folder), removed when the context ends. Logs which, with the
    checksum.
    """
    own_digest = file_digest(path)
    digest = strategy.broadcast(own_digest)
    if digest is None:
        raise FileNotFoundError(f"{path}: rank 0 cannot read the export of the previous stage")
    if strategy.reduce_boolean_decision(own_digest == digest, all=True):
        log.info(f"rank {strategy.global_rank}: starts from {path} (sha256 {digest}), read from rank 0's file")
        yield path
        return
    content = strategy.broadcast(Path(path).read_bytes() if strategy.is_global_zero else None)
    if strategy.is_global_zero:
        log.info(f"rank 0: starts from {path} (sha256 {digest}), its own file, broadcast to the other ranks")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"l2sae-rank{strategy.global_rank}-") as private:
        local = Path(private) / Path(path).name
        local.write_bytes(content)
        if file_digest(local) != digest:
            raise RuntimeError(f"{path}: the copy broadcast to rank {strategy.global_rank} differs from rank 0's file")
        log.info(f"rank {strategy.global_rank}: starts from {path} (sha256 {digest}), received by broadcast")
        yield str(local)
