"""Patch co-occurrence discriminator (official StyleGAN2PatchDiscriminator)."""

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from .layers import ConvLayer, EqualLinear, ResBlock

# resolution -> (base, capped): width = int(base * capacity), capped at max_channels where marked
PATCH_WIDTHS = {
    4: (256, True),
    8: (128, True),
    16: (64, True),
    32: (32, False),
    64: (16, False),
    128: (8, False),
    256: (4, False),
}


def patch_discriminator_channels(capacity: float, max_channels: int) -> dict[int, int]:
    """Width per patch resolution (``netPatchD_scale_capacity``, ``netPatchD_max_nc``)."""
    return {
        r: min(max_channels, int(b * capacity)) if capped else int(b * capacity)
        for r, (b, capped) in PATCH_WIDTHS.items()
    }


def patch_block_name(log_res: int) -> str:
    """Official name of the ResBlock that reduces 2^log_res -> 2^(log_res-1)."""
    return str(7 - log_res) if log_res <= 6 else f"{2**log_res}x{2**log_res}"


class PatchDiscriminator(nn.Module):
    """Judges whether two sets of patches share their texture.

    ``extract_features``: patches B x T x 3 x P x P -> features B*T x M x 2 x 2;
    ``discriminate_features``: two feature batches N x M x 2 x 2 -> logits N x 1, by a pair classifier of widths
    ``pair_width``, ``pair_width``, ``pair_width // 2`` (official: 2048, 2048, 1024).
    """

    def __init__(
        self,
        patch_size: int = 128,
        capacity: float = 4.0,
        max_channels: int = 384,
        antialias: bool = True,
        pair_width: int = 2048,
    ):
        super().__init__()
        taps = (1, 3, 3, 1) if antialias else (1,)
        ch = patch_discriminator_channels(capacity, max_channels)
        log_size = int(math.ceil(math.log2(patch_size)))
        convs = [("0", ConvLayer(3, ch[2**log_size], 3))]
        for i in range(log_size, 2, -1):
            convs.append((patch_block_name(i), ResBlock(ch[2**i], ch[2 ** (i - 1)], taps)))
        convs.append(("5", ResBlock(ch[4], 2 * max_channels, downsample=False)))
        convs.append(("6", ConvLayer(2 * max_channels, max_channels, 3, pad=0)))
        self.convs = nn.Sequential(OrderedDict(convs))
        self.pairlinear = nn.Sequential(
            EqualLinear(ch[4] * 2 * 2 * 2, pair_width, activate=True),
            EqualLinear(pair_width, pair_width, activate=True),
            EqualLinear(pair_width, pair_width // 2, activate=True),
            EqualLinear(pair_width // 2, 1),
        )

    def extract_features(self, patches: Tensor, aggregate: bool = False) -> Tensor:
        """B x T x 3 x P x P -> B*T x M x 2 x 2; ``aggregate`` replaces each image's T features by their mean."""
        b, t = patches.shape[:2]
        features = self.convs(patches.flatten(0, 1))
        features = features.view(b, t, *features.shape[1:])
        if aggregate:
            features = features.mean(1, keepdim=True).expand_as(features)
        return features.flatten(0, 1)

    def discriminate_features(self, features_a: Tensor, features_b: Tensor) -> Tensor:
        """N x M x 2 x 2 (twice) -> N x 1 logits of 'b has the same texture as a'."""
        return self.pairlinear(torch.cat([features_a.flatten(1), features_b.flatten(1)], dim=1))
