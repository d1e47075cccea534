"""The console scripts of pyproject.toml are the root scripts' entry points."""

import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

from l2sae import cli

ROOT = Path(__file__).resolve().parents[1]


def test_console_scripts_name_the_entry_functions():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {f"l2sae-{task}": f"l2sae.cli:{task}" for task in ("train", "edit", "evaluate", "app")}
    assert all(callable(getattr(cli, task)) for task in ("train", "edit", "evaluate", "app"))
    assert cli.PROJECT_ROOT == ROOT


def test_an_entry_function_composes_its_task_config(tmp_path):
    code = "import sys; from l2sae.cli import edit; sys.argv = ['l2sae-edit', '--cfg', 'job', 'roi=nose']; edit()"
    printed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    cfg = yaml.safe_load(printed.stdout)
    assert cfg["task_name"] == "edit" and cfg["roi"] == "nose" and cfg["precision"] == "auto"
    assert cfg["ckpt"]["smn"].endswith("/latest/smn.pt") and "matting" in cfg["editor"]
