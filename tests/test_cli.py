"""The console scripts of pyproject.toml are the root scripts' entry points."""

import gc
from pathlib import Path

import pytest
import tomllib
import yaml
from cli_helpers import run_script

from l2sae import cli

ROOT = Path(__file__).resolve().parents[1]


def test_console_scripts_name_the_entry_functions():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {f"l2sae-{task}": f"l2sae.cli:{task}" for task in ("train", "edit", "evaluate", "app")}
    assert all(callable(getattr(cli, task)) for task in ("train", "edit", "evaluate", "app"))
    assert cli.PROJECT_ROOT == ROOT


def test_an_entry_function_composes_its_task_config(tmp_path):
    console_script = tmp_path / "l2sae-edit"  # what pip writes: import the entry function, call it
    console_script.write_text("from l2sae.cli import edit\n\nedit()\n")
    printed = run_script(console_script, ["--cfg", "job", "roi=nose"], cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    cfg = yaml.safe_load(printed.stdout)
    assert cfg["task_name"] == "edit" and cfg["roi"] == "nose" and cfg["precision"] == "auto"
    assert cfg["ckpt"]["smn"].endswith("/latest/smn.pt") and "matting" in cfg["editor"]


def test_the_libraries_import_without_collections_and_stay_frozen():
    frozen = gc.get_freeze_count()
    with cli.imports_outside_collection():
        assert not gc.isenabled()
        imported = [[index] for index in range(1000)]  # stands in for the objects an import makes
    assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(imported)
    with pytest.raises(ImportError), cli.imports_outside_collection():
        raise ImportError("a missing extra")
    assert gc.isenabled()
