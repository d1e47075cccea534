"""Loggers and W&B for runs of any task: set-up from ``cfg.logger`` and teardown.

Hydra and Lightning are imported inside the functions, so importing :mod:`l2sae.utils` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path

# config groups whose chosen option becomes a W&B tag
TAGGED_GROUPS = ("experiment", "model", "backbone", "data", "slicing", "loss", "trainer")


def instantiate_loggers(cfg, prefix: str = "", wandb_group: str = "") -> list:
    """Every ``_target_`` entry of ``cfg.logger``; metric names get ``prefix`` (the stage) when several stages run;
    ``wandb_group``: the W&B run's group when the config leaves it empty (the sweep report joins its sweep's)."""
    from hydra.utils import instantiate

    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if not node or "_target_" not in node:
            continue
        overrides = {"prefix": prefix} if prefix else {}
        if node._target_.endswith("WandbLogger"):
            overrides.update(wandb_identity(cfg, node))
            if wandb_group and not node.get("group"):
                overrides["group"] = wandb_group
        # a partial, then the call: instantiate's own first parameter is named "config", like W&B's argument
        loggers.append(instantiate(node, _partial_=True)(**overrides))
    return loggers


def wandb_identity(cfg, node) -> dict:
    """Name, group and tags of the W&B run where the config leaves them empty.

    name: the run folder's name (a time stamp, or the job number in a sweep); group: the sweep folder's name,
    so each job of ``-m`` is its own run grouped per sweep; tags: the run's ``tags`` and ``group=choice`` of the
    config groups; config: the command line's overrides and the tags (the sweep's differing settings, as columns).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    output_dir = Path(cfg.paths.output_dir)
    identity: dict = {}
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not node.get("name"):
        identity["name"] = f"{output_dir.parent.name}-{output_dir.name}" if multirun else output_dir.name
    if not node.get("group") and multirun:
        identity["group"] = f"{cfg.task_name}-{output_dir.parent.name}"
    run_tags = [str(tag) for tag in cfg.get("tags") or []]
    identity["tags"] = list(node.get("tags") or []) + run_tags
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        identity["tags"] += [f"{group}={choices[group]}" for group in TAGGED_GROUPS if choices.get(group)]
        identity["config"] = {"overrides": list(HydraConfig.get().overrides.task), "tags": run_tags}
    return identity


def finish_wandb(error: str | None = None) -> None:
    """Close the W&B run, if one was started (each job of a sweep must get its own); ``error``: the run failed,
    with this message (into its summary as ``error``, exit code 1), which the sweep report shows."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        if error is not None:
            wandb.run.summary["error"] = error
        wandb.finish(exit_code=None if error is None else 1)
