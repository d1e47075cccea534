"""Run identity across ranks: the launcher's job id and rank in the Hydra run folder, adopting rank 0's folder,
the resume check across ranks (two gloo processes)."""

import os
import socket
from types import SimpleNamespace

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from train_helpers import CONF

from l2sae.training.distributed import RunFolderAgreement, adopt_run_folder, launched_as_rank_zero, launcher_job_id

LAUNCH_VARIABLES = (
    "RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_STEP_ID",
    "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID", "WORLD_SIZE",
)  # fmt: skip


@pytest.fixture
def launch_env(monkeypatch):
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return lambda **values: [monkeypatch.setenv(name, str(value)) for name, value in values.items()]


@pytest.mark.parametrize(
    "values, rank_zero",
    [
        ({}, True),
        ({"NODE_RANK": 1, "WORLD_SIZE": 2}, False),  # Lightning's start on the second node
        ({"NODE_RANK": 0, "LOCAL_RANK": 1}, False),  # Lightning's second process on the first node
        ({"RANK": 0, "LOCAL_RANK": 0, "GROUP_RANK": 0}, True),  # torchrun
        ({"RANK": 3, "LOCAL_RANK": 1, "GROUP_RANK": 1}, False),
        ({"SLURM_PROCID": 2}, False),
    ],
)
def test_the_launchers_environment_says_which_process_is_rank_zero(launch_env, values, rank_zero):
    launch_env(**values)
    assert launched_as_rank_zero() is rank_zero


def test_the_job_id_names_a_multi_process_job_only(launch_env):
    assert launcher_job_id() is None
    launch_env(SLURM_JOB_ID=77, SLURM_NTASKS=1)
    assert launcher_job_id() is None  # one process in an allocation: a time stamp (two runs may share the job)
    launch_env(SLURM_NTASKS=8, SLURM_STEP_ID=2)
    assert launcher_job_id() == "slurm-77.2"
    launch_env(SLURM_ARRAY_JOB_ID=70, SLURM_ARRAY_TASK_ID=3)
    assert launcher_job_id() == "slurm-70_3.2"
    for name in ("SLURM_JOB_ID", "SLURM_NTASKS"):
        os.environ.pop(name)
    launch_env(TORCHELASTIC_RUN_ID="none", WORLD_SIZE=4)
    assert launcher_job_id() is None  # torchrun's static rendezvous has no run id
    launch_env(TORCHELASTIC_RUN_ID="exp1")
    assert launcher_job_id() == "torchrun-exp1"


def hydra_settings(overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra


def test_run_folder_is_named_after_the_job_and_only_rank_zero_writes_hydras_files(launch_env, tmp_path):
    hydra = hydra_settings([f"paths.log_dir={tmp_path}"])
    assert hydra.run.dir.startswith(f"{tmp_path}/train/runs/20")  # a time stamp
    assert hydra.output_subdir == ".hydra"
    launch_env(RANK=1, LOCAL_RANK=1, WORLD_SIZE=2, TORCHELASTIC_RUN_ID="exp1")
    hydra = hydra_settings([f"paths.log_dir={tmp_path}"])
    assert hydra.run.dir == f"{tmp_path}/train/runs/torchrun-exp1"
    assert hydra.output_subdir is None
    OmegaConf.update(hydra, "runtime.output_dir", hydra.run.dir)
    assert hydra.job_logging.handlers.file.filename == "/dev/null"


def test_a_rank_takes_rank_zeros_run_folder_and_removes_its_own_empty_one(tmp_path):
    own = tmp_path / "logs" / "train" / "runs" / "own"
    own.mkdir(parents=True)
    (tmp_path / "logs" / "keep.txt").write_text("another run's file")
    cfg = OmegaConf.create(
        {"paths": {"log_dir": str(tmp_path / "logs"), "output_dir": str(own)}, "export": "${paths.output_dir}/smn.pt"}
    )
    adopt_run_folder(cfg, "/elsewhere/runs/rank0")
    assert cfg.export == "/elsewhere/runs/rank0/smn.pt"
    assert not (tmp_path / "logs" / "train").exists() and (tmp_path / "logs" / "keep.txt").exists()

    kept = tmp_path / "logs" / "train" / "runs" / "kept"
    kept.mkdir(parents=True)
    (kept / "notes.txt").write_text("written by someone")
    cfg.paths.output_dir = str(kept)
    adopt_run_folder(cfg, "/elsewhere/runs/rank0")
    assert (kept / "notes.txt").exists()  # never removes a folder that is not empty


def resume_checks(rank: int, port: int, queue) -> None:
    """On each of two gloo ranks: the resume check when both resume alike, then when rank 1 starts afresh."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        for steps in ([8, 8], [8, 0]):
            ckpt_path = "/run/checkpoints/smpn/last.ckpt" if steps[rank] else None
            trainer = SimpleNamespace(world_size=2, global_step=steps[rank], ckpt_path=ckpt_path)
            try:
                RunFolderAgreement("/run").on_train_start(trainer, None)
                queue.put((rank, steps[1], "ok"))
            except RuntimeError as error:
                queue.put((rank, steps[1], str(error)))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_resuming_from_different_checkpoints_stop_with_a_clear_error():
    context = mp.get_context("fork")  # the children inherit the imports (spawn re-imports torch)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = context.SimpleQueue()
    processes = [context.Process(target=resume_checks, args=(rank, port, queue)) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    answers = {(rank, case): answer for rank, case, answer in (queue.get() for _ in range(4))}
    assert answers[0, 8] == answers[1, 8] == "ok"
    assert answers[0, 0] == answers[1, 0]  # both ranks stop
    assert answers[0, 0].startswith("ckpt_path: the ranks resume from different checkpoints")
    assert "rank 0: step 8 from /run/checkpoints/smpn/last.ckpt; rank 1: step 0 from None" in answers[0, 0]
    assert "hydra.run.dir" in answers[0, 0]


def test_the_slurm_launcher_config_asks_for_the_trainers_nodes_and_devices(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra is not installed")
    GlobalHydra.instance().clear()
    overrides = ["hydra/launcher=slurm", "trainer=ddp_multinode", "trainer.num_nodes=3", "trainer.devices=4"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (3, 4, 4)
    assert launcher["submitit_folder"].startswith(f"{tmp_path}/train/multiruns/")


def test_each_rank_gets_random_streams_of_its_own_from_the_shared_one():
    import random

    import numpy as np
    import torch

    from l2sae.training.distributed import split_random_streams

    def draws(rank):
        torch.manual_seed(3)  # the same state on every rank at a stage's start
        seed = split_random_streams(rank, 4)
        return seed, torch.rand(3), np.random.rand(), random.random()

    streams = [draws(rank) for rank in range(4)]
    assert len({seed for seed, *_ in streams}) == 4
    for rank in range(1, 4):
        assert not torch.equal(streams[0][1], streams[rank][1])
        assert streams[0][2] != streams[rank][2] and streams[0][3] != streams[rank][3]
    again = draws(2)
    assert again[0] == streams[2][0] and torch.equal(again[1], streams[2][1])  # reproducible per (seed, rank)


def test_the_training_order_follows_the_given_seed_not_the_global_stream(tmp_path):
    import torch

    from l2sae.data.datamodule import L2SAEDataModule

    def order(global_seed, seed=None):
        torch.manual_seed(global_seed)  # a rank's own stream when the data module is made
        module = L2SAEDataModule(tmp_path, layout="image_folder", split_scheme="index", seed=seed)
        return list(module._training_order(50))

    assert order(0, seed=11) == order(1, seed=11) == order(11)  # None: the global seed when it is made
    assert order(0, seed=11) != order(0, seed=12)
