"""The editor a task config names (``conf/editor/``): checkpoints, device, precision and editor options.

Shared by ``edit.py``, ``evaluate.py`` and ``app.py``; reads the config as a plain mapping, so it needs
neither Hydra nor OmegaConf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from l2sae.editing.editor import L2SAEEditor


def editor_from_config(cfg: Mapping, device: torch.device, rois: Sequence[str] = ()) -> L2SAEEditor:
    """The editor of ``cfg.ckpt.{smn,smpn}``, ``cfg.precision`` and ``cfg.editor`` (L2SAEEditor's keyword
    arguments) on ``device``; fails, naming the region, unless its slicing has every one of ``rois`` (when given:
    the app takes any region of the slicing)."""
    editor = L2SAEEditor.from_checkpoints(
        cfg["ckpt"]["smn"], cfg["ckpt"]["smpn"], device=device, precision=str(cfg["precision"]), **cfg["editor"]
    )
    if rois:
        editor.slicing.validate_rois(rois)
    return editor
