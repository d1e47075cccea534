"""Multi-node training on one machine standing in for two nodes (two CPU processes, gloo), started as the README
says: with environment variables and with torchrun. Node 1 runs through ``separate_machine.py``, which hides node
0's folder from it (no shared file system) and reports any write there."""

import hashlib
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
from cli_helpers import start_script
from train_helpers import REPO, TINY_DATA

pytestmark = pytest.mark.slow

TRAIN = [
    "experiment=smoke",
    "trainer=ddp_multinode",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.num_nodes=2",
    "callbacks.progress_bar=null",
    "model.smn.trainer.max_steps=2",  # one batch of D + G, then two SMPN steps: the hand-off is what is tested
    "model.smpn.trainer.max_steps=2",
    *TINY_DATA,
]
HANDOFF = re.compile(r"rank (\d): starts from (\S+) \(sha256 ([0-9a-f]{64})\), (.*)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_node(launcher: str, node_rank: int, port: int, cwd, hidden):
    """The README's command for one node, started in ``cwd`` with its output in ``cwd/out.txt`` (``hidden``: the
    other node's folder, for node 1). Returns the process (``wait``, ``kill``)."""
    script = [str(REPO / "tests" / "separate_machine.py"), str(hidden)] if node_rank else []
    script = [*script, str(REPO / "train.py")]
    # TMPDIR: torchrun's agent leaves a torchelastic_* log folder in the temporary folder; one thread per node:
    # the two nodes share this machine's cores (with two threads each they spin: 3x the CPU time under -n 0)
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "PROJECT_ROOT": str(cwd),
        "TMPDIR": str(cwd.parent / f"tmp{node_rank}"),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("RANK", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(name, None)
    out = cwd / "out.txt"
    if launcher == "env":
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node_rank), WORLD_SIZE="2")
        return start_script(script[0], [*script[1:], *TRAIN], cwd=cwd, stdout=out, stderr=out, env=env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    torchrun += ["--node-rank", str(node_rank), "--master-addr", "127.0.0.1", "--master-port", str(port)]
    with open(out, "w") as log:
        return subprocess.Popen([*torchrun, *script, *TRAIN], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("launcher", ["env", "torchrun"])
def test_two_nodes_train_both_stages_into_rank_zeros_run_folder(tmp_path, launcher):
    port = free_port()
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    processes = []
    for rank, cwd in enumerate(nodes):
        cwd.mkdir()
        (tmp_path / f"tmp{rank}").mkdir()
        processes.append(start_node(launcher, rank, port, cwd, hidden=nodes[0]))
    try:
        codes = [process.wait(timeout=500) for process in processes]
    finally:
        for process in processes:
            process.kill()
    logs = [(cwd / "out.txt").read_text() for cwd in nodes]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    (run_dir,) = (nodes[0] / "logs" / "train" / "runs").iterdir()
    for name in ("smn.pt", "smpn.pt", "metrics.json", "config.yaml", "checkpoints/smpn/last.ckpt"):
        assert (run_dir / name).is_file(), name
    assert (nodes[0] / "logs" / "latest").resolve() == run_dir.resolve()
    # node 1 wrote nothing into node 0's folder and left no run folder of its own
    assert "WRITE-ATTEMPT" not in logs[1]
    assert not [path for path in (nodes[1] / "logs").rglob("*")]

    # both ranks' SMPN started from rank 0's smn.pt: node 1 received it by broadcast
    smn_digest = hashlib.sha256((run_dir / "smn.pt").read_bytes()).hexdigest()
    handoffs = {int(m[0]): m for log in logs for m in HANDOFF.findall(log)}
    assert sorted(handoffs) == [0, 1]
    assert {(path, digest) for _, path, digest, _ in handoffs.values()} == {(str(run_dir / "smn.pt"), smn_digest)}
    assert handoffs[1][3] == "received by broadcast"
    assert f"rank 1: the run folder is rank 0's {run_dir}" in logs[1]
    smpn = torch.load(run_dir / "checkpoints" / "smpn" / "last.ckpt", weights_only=True, map_location="cpu")
    assert smpn["hyper_parameters"]["init_checkpoint"] == str(run_dir / "smn.pt")
