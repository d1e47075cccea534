"""The layers stay apart: the library imports without Hydra, OmegaConf or Lightning, and the tasks share
only the bottom layer (``l2sae.utils``), never each other's ``run`` modules."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from layers_helpers import PACKAGE, TASKS, imported_modules, package_files

LIBRARY_WITHOUT_TRAINING = ("nn", "data", "editing", "evaluation", "photos")
TESTS = Path(__file__).resolve().parent


def test_the_library_imports_without_hydra_omegaconf_lightning_or_wandb():
    code = (  # a new interpreter; the collector off, as only what gets imported counts (1 s less CPU)
        "import gc\ngc.disable()\n"
        "import sys, l2sae.utils, l2sae.nn, l2sae.regions, l2sae.editing, l2sae.evaluation\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('hydra', 'omegaconf', 'pytorch_lightning', 'lightning', 'wandb'))\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("task", TASKS)
def test_no_task_imports_another_tasks_run_module(task):
    foreign = {f"l2sae.{other}.run" for other in TASKS if other != task}
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(names & foreign)
        for path in package_files(task)
        if (names := imported_modules(path)) & foreign
    }
    assert not offenders


def test_library_modules_never_import_training():
    offenders = [
        str(path.relative_to(PACKAGE))
        for package in LIBRARY_WITHOUT_TRAINING
        for path in package_files(package)
        if any(name == "l2sae.training" or name.startswith("l2sae.training.") for name in imported_modules(path))
    ]
    assert not offenders


def test_the_bottom_layer_imports_nothing_else_of_l2sae():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(name for name in imported_modules(path) if name.startswith("l2sae."))
        for path in package_files("utils")
    }
    assert all(name.startswith("l2sae.utils") for names in offenders.values() for name in names), offenders


def test_tests_share_helpers_modules_not_test_modules():
    """Shared test code lives in tests/*_helpers.py or conftest.py: no test imports, or names by ``_target_``,
    another test module."""
    offenders = {
        path.name: sorted(name for name in imported_modules(path) if name.split(".")[0].startswith("test_"))
        for path in TESTS.glob("*.py")
    }
    offenders = {name: modules for name, modules in offenders.items() if modules}
    named = re.compile(r"[\"'=]test_\w+\.(?!py\b)\w+")  # an object of a test module, as _target_ names it
    targets = [path.name for path in TESTS.glob("*.py") if named.search(path.read_text())]
    assert not offenders and not targets, (offenders, targets)
