"""LPIPS perceptual distance (the ``lpips`` package) with offline-friendly backbone weights.

lpips ships its linear heads; the AlexNet / VGG-16 backbone comes from torchvision. Both are read by
:func:`l2sae.utils.pretrained.build_lpips` (weights only, from a configured path or the torch hub cache), so a
machine without network only needs that one file; a download is tried only where neither has it.
"""

from __future__ import annotations

from pathlib import Path

import lpips
import torch
from torch import Tensor

from l2sae.utils import pretrained

BACKBONE_WEIGHTS = {net: filename for net, (filename, _) in pretrained.LPIPS_BACKBONES.items()}
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
    return pretrained.build_lpips(net, backbone_weights_path, random_backbone, key=WEIGHTS_KEY, net_key=NET_KEY)


@torch.no_grad()
def lpips_distance(model: lpips.LPIPS, images: Tensor, others: Tensor) -> Tensor:
    """Per-pair LPIPS distance B between image batches B x 3 x H x W in [-1, 1]."""
    return model(images, others).flatten()
