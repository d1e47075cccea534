"""The layers stay apart: the library imports without Hydra, OmegaConf or Lightning, and the tasks share
only the bottom layer (``l2sae.utils``), never each other's ``run`` modules."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "l2sae"
TASKS = ("training", "editing", "evaluation", "app")
LIBRARY_WITHOUT_TRAINING = ("nn", "data", "editing", "evaluation", "photos")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved against its package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py")) if (PACKAGE / package).is_dir() else []


def test_the_library_imports_without_hydra_omegaconf_or_lightning():
    code = (
        "import sys, l2sae.utils, l2sae.nn, l2sae.regions, l2sae.editing, l2sae.evaluation\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('hydra', 'omegaconf', 'pytorch_lightning', 'lightning'))\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("task", TASKS)
def test_no_task_imports_another_tasks_run_module(task):
    foreign = {f"l2sae.{other}.run" for other in TASKS if other != task}
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(names & foreign)
        for path in _modules(task)
        if (names := _imports(path)) & foreign
    }
    assert not offenders


def test_library_modules_never_import_training():
    offenders = [
        str(path.relative_to(PACKAGE))
        for package in LIBRARY_WITHOUT_TRAINING
        for path in _modules(package)
        if any(name == "l2sae.training" or name.startswith("l2sae.training.") for name in _imports(path))
    ]
    assert not offenders


def test_the_bottom_layer_imports_nothing_else_of_l2sae():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(name for name in _imports(path) if name.startswith("l2sae."))
        for path in _modules("utils")
    }
    assert all(name.startswith("l2sae.utils") for names in offenders.values() for name in names), offenders
