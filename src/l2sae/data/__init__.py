"""Face datasets: CelebAMask-HQ-style sets with ROI masks, image folders, synthetic faces.

``L2SAEDataModule`` and ``LogSkippedFiles`` (the Lightning parts) and ``ensure_synthfaces`` are
imported on first use: importing the datasets does not import Lightning, and
``python -m l2sae.data.synthfaces`` does not find its module imported already.
"""

import importlib

from l2sae.data.celebamask_hq import CelebAMaskHQ
from l2sae.data.image_folder import ImageFolder

__all__ = ["CelebAMaskHQ", "ImageFolder", "L2SAEDataModule", "LogSkippedFiles", "ensure_synthfaces"]
_LAZY = {"L2SAEDataModule": "datamodule", "LogSkippedFiles": "datamodule", "ensure_synthfaces": "synthfaces"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"l2sae.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
