"""StyleGAN2 image discriminator as configured by the SAE (no minibatch-stddev layer)."""

import math
from collections import OrderedDict

from torch import Tensor, nn

from .layers import ConvLayer, EqualLinear, ResBlock

# resolution -> (base, capped): width = int(base * multiplier), capped at max_channels (official: 512) where marked
DISCRIMINATOR_WIDTHS = {
    16: (512, True),
    32: (512, True),
    64: (256, False),
    128: (128, False),
    256: (64, False),
    512: (32, False),
    1024: (16, False),
}


def discriminator_channels(multiplier: float, max_channels: int = 512) -> dict[int, int]:
    """Width per resolution; ``multiplier = 2 * netD_scale_capacity``. 4 and 8 are fixed at ``max_channels``
    (512 in the official code)."""
    widths = {
        r: min(max_channels, int(b * multiplier)) if capped else int(b * multiplier)
        for r, (b, capped) in DISCRIMINATOR_WIDTHS.items()
    }
    return {4: max_channels, 8: max_channels, **widths}


def discriminator_block_name(log_res: int) -> str:
    """Official name of the ResBlock that reduces 2^log_res -> 2^(log_res-1)."""
    return str(9 - log_res) if log_res <= 8 else f"{2**log_res}x{2**log_res}"


class Discriminator(nn.Module):
    """images B x 3 x S x S (S = ``size``) -> logits B x 1.

    The layout follows ``S' = 2^round(log2 S)``; a non power-of-two ``S`` (e.g. 768) ends on a
    ``4 S / S'`` square feature map.
    """

    def __init__(self, size: int, capacity: float = 1.0, antialias: bool = True, max_channels: int = 512):
        super().__init__()
        taps = (1, 3, 3, 1) if antialias else (1,)
        ch = discriminator_channels(2.0 * capacity, max_channels)
        log_size = int(round(math.log2(size)))
        side = int(4 * size / 2**log_size)
        convs = [("0", ConvLayer(3, ch[2**log_size], 1))]
        for i in range(log_size, 2, -1):
            convs.append((discriminator_block_name(i), ResBlock(ch[2**i], ch[2 ** (i - 1)], taps)))
        self.convs = nn.Sequential(OrderedDict(convs))
        self.final_conv = ConvLayer(ch[8], ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * side**2, ch[4], activate=True), EqualLinear(ch[4], 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.final_linear(self.final_conv(self.convs(images)).flatten(1))
