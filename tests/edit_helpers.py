"""Helpers of the edit tests (no tests here): conf/edit.yaml composed for the tiny networks."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]


def edit_config(checkpoints: tuple[Path, Path], *overrides: str) -> DictConfig:
    """conf/edit.yaml for the (smn.pt, smpn.pt) ``checkpoints``, with ``overrides``."""
    smn, smpn = checkpoints
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("edit", overrides=[f"ckpt.smn={smn}", f"ckpt.smpn={smpn}", *overrides])


def unaligned_edit_config(checkpoints: tuple[Path, Path], *overrides: str) -> DictConfig:
    """:func:`edit_config` with align=none (the whole picture: inputs of noise, not photos of faces;
    tests/test_edit_photos_cli.py covers photos)."""
    return edit_config(checkpoints, "align=none", *overrides)
