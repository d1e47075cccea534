"""SAE encoder E: image -> (structure code, texture code)  (official StyleGAN2ResnetEncoder)."""

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from .layers import ConvLayer, EqualLinear, ResBlock
from .ops import normalize


class Encoder(nn.Module):
    """``channels[i]`` is the width after the i-th stage (len = structure + texture downsamplings + 1).

    forward: images B x 3 x H x W -> structure B x C_s x H/2^k x W/2^k, texture B x C_t
    (both L2-normalised over dim 1), k = ``structure_downsamplings``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        structure_channels: int,
        texture_channels: int,
        structure_downsamplings: int,
        texture_downsamplings: int,
        antialias: bool = True,
    ):
        super().__init__()
        k, ch = structure_downsamplings, list(channels)
        if len(ch) != k + texture_downsamplings + 1:
            raise ValueError(f"encoder_channels: expected {k + texture_downsamplings + 1} widths, got {len(ch)}")
        taps = (1, 2, 1) if antialias else (1,)
        self.FromRGB = ConvLayer(3, ch[0], 1)
        self.DownToSpatialCode = nn.Sequential(
            OrderedDict(
                (f"ResBlockDownBy{2**i}", ResBlock(ch[i], ch[i + 1], taps, reflection_pad=True)) for i in range(k)
            )
        )
        self.ToSpatialCode = nn.Sequential(
            ConvLayer(ch[k], ch[k], 1), ConvLayer(ch[k], structure_channels, 1, activate=False)
        )
        self.DownToGlobalCode = nn.Sequential(
            OrderedDict(
                (f"ConvLayerDownBy{2**i}", ConvLayer(ch[i], ch[i + 1], 3, downsample=True, blur_taps=(1,), pad=0))
                for i in range(k, len(ch) - 1)
            )
        )
        self.ToGlobalCode = nn.Sequential(EqualLinear(ch[-1], texture_channels))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        midpoint = self.DownToSpatialCode(self.FromRGB(images))
        structure = self.ToSpatialCode(midpoint)
        texture = self.ToGlobalCode(self.DownToGlobalCode(midpoint).mean(dim=(2, 3)))
        return normalize(structure), normalize(texture)
