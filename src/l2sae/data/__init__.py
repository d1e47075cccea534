"""Face datasets: CelebAMask-HQ-style sets with ROI masks, image folders, synthetic faces.

``L2SAEDataModule`` and ``LogSkippedFiles`` (the Lightning parts) are imported on first use, so
importing the datasets does not import Lightning.
"""

from l2sae.data.celebamask_hq import CelebAMaskHQ
from l2sae.data.image_folder import ImageFolder
from l2sae.data.io import BadFileError
from l2sae.data.synthfaces import ensure_synthfaces

__all__ = ["BadFileError", "CelebAMaskHQ", "ImageFolder", "L2SAEDataModule", "LogSkippedFiles", "ensure_synthfaces"]


def __getattr__(name: str):
    if name in ("L2SAEDataModule", "LogSkippedFiles"):
        from l2sae.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
