"""The editor a task config names (``conf/editor/``): checkpoints, device, precision and editor options.

Shared by ``edit.py``, ``evaluate.py`` and ``app.py``. :class:`EditorConfig` is the group's schema: plain
dataclasses (no defaults: ``conf/editor/default.yaml`` holds them) that each task's schema extends, so
OmegaConf checks every type and closed choice when Hydra composes the config. :func:`editor_from_config`
reads the composed config as a plain mapping, so this module needs neither Hydra nor OmegaConf.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from l2sae.editing.editor import L2SAEEditor, MaskReading
from l2sae.editing.swap_designs import SwapDesignName
from l2sae.utils.precision import Precision

log = logging.getLogger(__name__)


@dataclass
class Checkpoints:
    smn: str
    smpn: str


@dataclass
class MattingSettings:
    """:class:`l2sae.editing.matting.AlphaMatting`'s fields (it checks their meaning)."""

    kernel_size: int | None
    sigma: float | None
    seam_strength: float
    seam_kernel_size: int


@dataclass
class EditorOptions:
    """The keyword arguments of :class:`L2SAEEditor` (it checks their meaning)."""

    style_sigma: float
    mask_threshold: float | None
    image_size: int | None
    soft_masks: bool
    masks: MaskReading
    fast_mask_min_iou: float
    channels_last: bool
    window: bool
    window_max_fraction: float
    structure_swap: SwapDesignName
    matting: MattingSettings


@dataclass
class EditorConfig:
    """``conf/editor/default.yaml`` (package ``_global_``): the base of the edit, evaluate and app schemas."""

    ckpt: Checkpoints
    precision: Precision
    device: str  # auto | cpu | cuda | cuda:N, read by l2sae.utils.device.resolve_device
    editor: EditorOptions


def editor_from_config(
    cfg: Mapping, device: torch.device, rois: Sequence[str] | None = None, key: str = "roi"
) -> L2SAEEditor:
    """The editor of ``cfg.ckpt.{smn,smpn}``, ``cfg.precision`` and ``cfg.editor`` (L2SAEEditor's keyword
    arguments) on ``device``. ``rois`` (setting ``key``), when given, are checked once, here: each must be a
    region of the editor's slicing (the app takes any region of it and gives none)."""
    editor = L2SAEEditor.from_checkpoints(
        cfg["ckpt"]["smn"], cfg["ckpt"]["smpn"], device=device, precision=cfg["precision"], **cfg["editor"]
    )
    if rois is not None:
        editor.slicing.validate_rois(rois, key)
    if not editor.mask_reading_note:  # (the editor logged the reading itself, with its reason)
        log.info("editor.masks=%s: %s", cfg["editor"].get("masks", "auto"), editor.mask_reading_text())
    return editor
