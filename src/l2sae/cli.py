"""The command-line entry points: ``train.py``, ``edit.py``, ``evaluate.py`` and ``app.py`` at the repository's
root call these, and ``pip install -e .`` installs them as ``l2sae-train``, ``l2sae-edit``, ``l2sae-evaluate``
and ``l2sae-app``. Each composes ``conf/<task>.yaml`` of the checkout with Hydra and calls the task's
``run(cfg)``.

A setting of the wrong type or outside its closed choices (``mode=paint``, ``batch_size=two``) fails while Hydra
composes the config against the task's schema (e.g. :class:`l2sae.editing.run.EditConfig`): Hydra prints the
override, OmegaConf's reason (``Invalid value 'paint', expected one of [style, swap_style, swap_structure]``)
and ``full_key: mode``, and exits with status 1. The project's own errors (a bad setting, input file, checkpoint
or weight file: the user's to fix) are printed as one ``error: <message>`` line (the message names the key or
file and what to do; OmegaConf's, e.g. an interpolation that resolves to the wrong type, as ``<key>: <reason>``)
and the command exits with status 1, without a traceback. Anything else is a bug and keeps its traceback, as
does every error with ``HYDRA_FULL_ERROR=1``. In a multirun (``-m``) a job's error is printed the same way and
the job is recorded as failed (its run folder keeps what it wrote, e.g. training's failure.json); Hydra goes on
with the next job and the command exits with status 1 at the end, naming the first failed job's overrides.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.errors import CompactHydraException

from l2sae.utils.errors import USER_ERRORS, unwrapped

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # src/l2sae/cli.py -> the checkout


class JobFailed(CompactHydraException):
    """A multirun job's user error: Hydra records the job as failed, goes on, and prints only this message."""


@contextmanager
def reported_errors(extra: tuple[type[BaseException], ...] = (), multirun: bool = False) -> Iterator[None]:
    """Run the block; a :data:`USER_ERRORS` (or ``extra``) exception becomes ``error: ...`` on stderr and exit 1,
    or, in a multirun job, :class:`JobFailed` (a SystemExit would end the whole multirun)."""
    try:
        yield
    except Exception as raised:
        error = unwrapped(raised)  # a user error met while Hydra built an object of the config
        if not isinstance(error, USER_ERRORS + extra) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        key = getattr(error, "full_key", None)  # OmegaConf's: the reason, then "full_key: ..." lines
        message = f"error: {key}: {str(error).splitlines()[0]}" if key else f"error: {error}"
        print(message, file=sys.stderr)
        if multirun:
            raise JobFailed(message) from error
        raise SystemExit(1) from None


@contextmanager
def imports_outside_collection() -> Iterator[None]:
    """Import the task's libraries with the garbage collector off, then freeze what exists: torch, Lightning and
    Hydra make about 500,000 objects that live to the end, and each full collection would walk them all again
    (the commands start 1.5-1.6x faster; ``bench/startup.py``)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _entry_point(
    task: str,
    run_module: str,
    function: str = "run",
    user_errors: tuple[str, ...] = (),
    preload: tuple[str, ...] = (),
    **environment: str,
) -> Callable[[], object]:
    """``main()`` of ``task``: Hydra with ``conf/<task>.yaml``, then ``<run_module>.<function>(cfg)``;
    ``user_errors``: further error types reported as one line (:func:`reported_errors`), as ``module:Name``;
    ``preload``: modules the task imports later, imported with the others (:func:`imports_outside_collection`);
    ``environment``: defaults for environment variables."""

    def main() -> object:
        for name, value in {"PROJECT_ROOT": str(PROJECT_ROOT), **environment}.items():
            os.environ.setdefault(name, value)

        with imports_outside_collection():
            import hydra
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            module = importlib.import_module(run_module)  # first: training registers resolvers
            task_run = getattr(module, function)
            for name in preload:
                importlib.import_module(name)
            extra = tuple(
                getattr(importlib.import_module(name.split(":")[0]), name.split(":")[1]) for name in user_errors
            )

        @hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name=task)
        def run(cfg):
            with reported_errors(extra, multirun=HydraConfig.get().mode == RunMode.MULTIRUN):
                return task_run(cfg)

        return run()

    main.__doc__ = f"``python {task}.py``: conf/{task}.yaml -> {run_module}.run(cfg)."
    return main


# objective returns optimized_metric to a sweeper; a stop on a non-finite loss is reported as one line too
train = _entry_point("train", "l2sae.training.run", "objective", ("l2sae.training.callbacks:NonFiniteLossError",))
edit = _entry_point("edit", "l2sae.editing.run")
evaluate = _entry_point("evaluate", "l2sae.evaluation.run")
# the page's Gradio (imported once a page starts); nothing phones home
app = _entry_point("app", "l2sae.app.run", preload=("l2sae.app.page",), GRADIO_ANALYTICS_ENABLED="False")
