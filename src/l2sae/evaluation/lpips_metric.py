"""LPIPS perceptual distance (the ``lpips`` package) with offline-friendly backbone weights.

lpips ships its linear heads; the AlexNet / VGG-16 backbone comes from torchvision. We load the
torchvision file from a configured path or the torch hub cache ourselves, so a machine without
network only needs that one file; a download is tried only where neither has it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lpips
import torch
from torch import Tensor

from l2sae.evaluation.weights import explain_download_failure, local_weights
from l2sae.utils.errors import ConfigError

BACKBONE_WEIGHTS = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
NET_KEY = "metrics.lpips.net"
WEIGHTS_KEY = "metrics.lpips.backbone_weights_path"


def build_lpips(
    net: str = "alex",
    backbone_weights_path: str | Path | None = None,
    random_backbone: bool = False,
) -> lpips.LPIPS:
    """A frozen LPIPS model in eval mode; call it on two image batches B x 3 x H x W in [-1, 1].

    ``random_backbone=True`` keeps an untrained backbone (no weights needed): for tests only.
    """
    if net not in BACKBONE_WEIGHTS:
        raise ConfigError(f"{NET_KEY}: unknown LPIPS backbone {net!r}; choose from {', '.join(BACKBONE_WEIGHTS)}")
    filename = BACKBONE_WEIGHTS[net]
    local = None if random_backbone else local_weights(filename, backbone_weights_path, WEIGHTS_KEY)
    with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*deprecated", category=UserWarning)
        if random_backbone or local is not None:
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        else:
            with explain_download_failure(filename, WEIGHTS_KEY):
                model = lpips.LPIPS(net=net, verbose=False)
    if local is not None:
        _load_backbone(model, local)
    return model.eval().requires_grad_(False)


def _load_backbone(model: lpips.LPIPS, path: Path) -> None:
    """Copy a torchvision AlexNet / VGG-16 checkpoint's ``features.<i>.*`` into LPIPS' ``slice<k>.<i>.*``."""
    try:
        torchvision_state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: cannot read it as a PyTorch checkpoint ({error}); download it again.") from error
    state = {}
    for name in model.net.state_dict():
        source = "features." + name.split(".", 1)[1]
        if source not in torchvision_state:
            raise ValueError(
                f"{path}: no {source!r}; expected torchvision's {BACKBONE_WEIGHTS[model.pnet_type]} for LPIPS net "
                f"{model.pnet_type!r}."
            )
        state[name] = torchvision_state[source]
    model.net.load_state_dict(state)


@torch.no_grad()
def lpips_distance(model: lpips.LPIPS, images: Tensor, others: Tensor) -> Tensor:
    """Per-pair LPIPS distance B between image batches B x 3 x H x W in [-1, 1]."""
    return model(images, others).flatten()
