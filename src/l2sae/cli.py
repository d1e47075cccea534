"""The command-line entry points: ``train.py``, ``edit.py``, ``evaluate.py`` and ``app.py`` at the repository's
root call these, and ``pip install -e .`` installs them as ``l2sae-train``, ``l2sae-edit``, ``l2sae-evaluate``
and ``l2sae-app``. Each composes ``conf/<task>.yaml`` of the checkout with Hydra and calls the task's
``run(cfg)``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # src/l2sae/cli.py -> the checkout


def _entry_point(task: str, run_module: str, function: str = "run", **environment: str) -> Callable[[], object]:
    """``main()`` of ``task``: Hydra with ``conf/<task>.yaml``, then ``<run_module>.<function>(cfg)``;
    ``environment``: defaults for environment variables."""

    def main() -> object:
        import hydra

        for name, value in {"PROJECT_ROOT": str(PROJECT_ROOT), **environment}.items():
            os.environ.setdefault(name, value)

        task_run = getattr(importlib.import_module(run_module), function)  # first: training registers resolvers

        @hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name=task)
        def run(cfg):
            return task_run(cfg)

        return run()

    main.__doc__ = f"``python {task}.py``: conf/{task}.yaml -> {run_module}.run(cfg)."
    return main


train = _entry_point("train", "l2sae.training.run", "objective")  # returns optimized_metric to a sweeper
edit = _entry_point("edit", "l2sae.editing.run")
evaluate = _entry_point("evaluate", "l2sae.evaluation.run")
app = _entry_point("app", "l2sae.app.run", GRADIO_ANALYTICS_ENABLED="False")  # nothing phones home
