"""SAE generator G: (structure, texture) -> image  (official StyleGAN2ResnetGenerator)."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import SQRT2, ConvLayer, EqualLinear, StyledConv, ToRGB
from .ops import normalize


class SpatialCodeModulation(nn.Module):
    """``structure * A(texture) + B(texture)`` (per channel; no +1 on the scale)."""

    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.scale = EqualLinear(style_dim, channels)
        self.bias = EqualLinear(style_dim, channels)

    def forward(self, structure: Tensor, style: Tensor) -> Tensor:
        return structure * self.scale(style)[:, :, None, None] + self.bias(style)[:, :, None, None]


class HeadResBlock(nn.Module):
    """Resolution-preserving block: ``(skip(x) + conv2(conv1(x, t), t)) / sqrt(2)``, always with noise."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int):
        super().__init__()
        self.conv1 = StyledConv(in_ch, out_ch, 3, style_dim)
        self.conv2 = StyledConv(out_ch, out_ch, 3, style_dim)
        self.skip = ConvLayer(in_ch, out_ch, 1, bias=False, activate=False) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return (self.skip(x) + self.conv2(self.conv1(x, style), style)) / SQRT2


class UpsamplingResBlock(nn.Module):
    """x2 block: ``(up_bilinear(skip(x)) + conv2(conv1_up(x, t), t)) / sqrt(2)``; skip has bias + lrelu."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, blur_taps: Sequence[float], use_noise: bool):
        super().__init__()
        self.conv1 = StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_taps=blur_taps, use_noise=use_noise)
        self.conv2 = StyledConv(out_ch, out_ch, 3, style_dim, use_noise=use_noise)
        self.skip = ConvLayer(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        skip = F.interpolate(self.skip(x), scale_factor=2, mode="bilinear", align_corners=False)
        return (skip + self.conv2(self.conv1(x, style), style)) / SQRT2


class Generator(nn.Module):
    """forward: structure B x C_s x h x w, texture B x C_t -> images B x 3 x h*2^n x w*2^n (unbounded).

    ``head_channels``: widths of the resolution-preserving blocks; ``up_channels``: widths of the
    n upsampling blocks (named UpsamplingResBlock16, 32, ... whatever the real resolution).
    """

    def __init__(
        self,
        structure_channels: int,
        style_dim: int,
        head_channels: Sequence[int],
        up_channels: Sequence[int],
        antialias: bool = True,
        use_noise: bool = True,
    ):
        super().__init__()
        taps = (1, 3, 3, 1) if antialias else (1,)
        self.SpatialCodeModulation = SpatialCodeModulation(style_dim, structure_channels)
        self.blocks: list[str] = []
        in_ch = structure_channels
        for i, out_ch in enumerate(head_channels):
            self._add_block(f"HeadResnetBlock{i}", HeadResBlock(in_ch, out_ch, style_dim))
            in_ch = out_ch
        for j, out_ch in enumerate(up_channels):
            self._add_block(
                f"UpsamplingResBlock{2 ** (4 + j)}", UpsamplingResBlock(in_ch, out_ch, style_dim, taps, use_noise)
            )
            in_ch = out_ch
        self.ToRGB = ToRGB(in_ch, style_dim, taps)

    def _add_block(self, name: str, block: nn.Module) -> None:
        self.add_module(name, block)
        self.blocks.append(name)

    def forward(self, structure: Tensor, texture: Tensor, normalize_structure: bool = True) -> Tensor:
        """``normalize_structure=False`` feeds the structure as given (for codes normalised, then sliced)."""
        return self.ToRGB(self.features(structure, texture, normalize_structure), normalize(texture))

    def features(
        self, structure: Tensor, texture: Tensor, normalize_structure: bool = True, until: str | None = None
    ) -> Tensor:
        """The output of block ``until`` (one of ``blocks``; None: the last), computing no block after it:
        B x C x h 2^u x w 2^u for the u upsampling blocks up to it, exactly the full decode's features there."""
        if until is not None and until not in self.blocks:
            raise ValueError(f"until: {until!r} is not a block of this generator; choose one of {self.blocks}")
        texture = normalize(texture)
        x = self.SpatialCodeModulation(normalize(structure) if normalize_structure else structure, texture)
        for name in self.blocks:
            x = getattr(self, name)(x, texture)
            if name == until:
                break
        return x

    def block_scale(self, name: str) -> int:
        """How many times larger than the structure code the output of block ``name`` is (2^upsamplings)."""
        upsamplings = self.blocks[: self.blocks.index(name) + 1]
        return 2 ** sum(isinstance(getattr(self, block), UpsamplingResBlock) for block in upsamplings)

    def block_channels(self, name: str) -> int:
        """Channels of block ``name``'s output."""
        return getattr(self, name).conv2.conv.weight.shape[1]  # 1 x out x in x k x k
