"""Test-wide settings: no W&B traffic, no network downloads, deterministic torch, one torch thread per
pytest-xdist worker, garbage collection for a large heap, end-to-end modules first. Under ``-n 2`` the controlling
process runs no test and so never imports torch (its start-up delays the workers')."""

import gc
import os
import shutil
import socket
import tempfile

# Each test process holds torch, Lightning, Hydra and gradio: about 650,000 objects that live to the end and that
# every full collection walks again (~0.25 s each; 18 s of CPU in the 546 small tests). Collections are made 14x
# rarer here, and what exists once the tests are collected is frozen (left out of every later collection).
gc.set_threshold(10_000, 10, 10)

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: the N workers share the cores, so each (and every process it starts) runs one intra-op
    # thread; tiny networks gain little from a second thread, and idle threads spin on a busy machine
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    torch.set_num_threads(1)

import pytest  # noqa: E402


def pytest_collection_finish(session):
    gc.freeze()


@pytest.hookimpl(tryfirst=True)  # before -m selects: the notebook is marked slow here
def pytest_collection_modifyitems(items):
    """The notebook (nbmake's item, no markers of its own) is an end-to-end run: marked slow, so that -m "not slow"
    leaves it out. Modules with end-to-end runs (the notebook, then those with slow tests) first, each module's
    tests in their order: under pytest-xdist (--dist loadfile) the longest work starts first and the short modules
    fill the gaps at the end."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)

    def weight(item) -> int:
        if item.path.suffix == ".ipynb":
            return 0
        return 1 if item.path in slow_modules else 2

    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=weight)


class NotebookScratch:
    """The notebook's kernel gets a temporary folder of its own (TMPDIR), removed after the notebook: the tour's
    short model and evaluation go to ``tempfile.mkdtemp`` folders, which a person running it may look into, but
    which a test run would otherwise leave in the system's temporary folder (two per run). A plugin, not a hook
    of this file: a conftest's item hooks reach only the items under its folder, and the notebook is not."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if item.path.suffix != ".ipynb":
            return (yield)
        scratch = tempfile.mkdtemp(prefix="l2sae_notebook_")
        before = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch
        try:
            return (yield)
        finally:
            if before is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = before
            shutil.rmtree(scratch, ignore_errors=True)


def pytest_configure(config):
    config.pluginmanager.register(NotebookScratch(), "l2sae_notebook_scratch")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """(smn.pt, smpn.pt): tiny random-weight networks saved the way a training run exports them."""
    from tiny_networks import save_tiny_checkpoints

    return save_tiny_checkpoints(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A folder for the synthetic faces of a module's training runs: drawn by the first run, read by the others."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory):
    """A freshly initialised tiny SAE saved as an SMN (smn.pt) for a module's SMPN runs to start from."""
    from train_helpers import tiny_sae_file

    return tiny_sae_file(tmp_path_factory.mktemp("start") / "smn.pt")


@pytest.fixture
def offline_empty_cache(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: downloads fail like on a machine without internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise OSError("network blocked in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path / "torch_home" / "hub" / "checkpoints"
