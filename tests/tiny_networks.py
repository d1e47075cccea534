"""The tests' tiny networks (no tests here): the slicing of the tiny SAE preset's 8-channel structure code, and
random-weight SMN / SMPN checkpoints saved the way a training run exports them."""

from pathlib import Path

import torch

from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
from l2sae.regions import SliceScheme

TINY_SLICING = SliceScheme({"hair": (0, 1), "skin": (2, 3), "nose": (4,), "eyes": (5,), "lips_mouth": (6,)}, 8)


def save_tiny_checkpoints(folder: Path) -> tuple[Path, Path]:
    """(smn.pt, smpn.pt) in ``folder``: tiny random-weight networks (seeds 1 and 2); the SMPN's records
    ``TINY_SLICING`` and a 64 px image size."""
    paths = []
    for seed, kind in ((1, "smn"), (2, "smpn")):
        torch.manual_seed(seed)
        network = SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False)
        extra = {"kind": kind}
        if kind == "smpn":
            extra.update(slicing=TINY_SLICING.to_dict(), image_size=64)
        paths.append(save_sae(network, folder / f"{kind}.pt", extra=extra))
    return tuple(paths)
