"""Swapping Autoencoder networks in plain PyTorch (no Lightning / Hydra / W&B imports).

Main entry points: :class:`SAEConfig`, :class:`SwappingAutoencoder`, :func:`load_sae`,
:func:`save_sae`, :func:`read_extra`, :func:`paired_smn`, :func:`random_patch_crops`.
"""

from .checkpoint import CheckpointError, infer_config, load_sae, paired_smn, read_extra, save_sae
from .patches import random_patch_crops
from .sae import PRESETS, SAEConfig, SwappingAutoencoder, pairwise_swap

__all__ = [
    "PRESETS",
    "CheckpointError",
    "SAEConfig",
    "SwappingAutoencoder",
    "infer_config",
    "load_sae",
    "pairwise_swap",
    "random_patch_crops",
    "paired_smn",
    "read_extra",
    "save_sae",
]
