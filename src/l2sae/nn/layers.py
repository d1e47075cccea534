"""StyleGAN2-style layers as used by the Swapping Autoencoder.

Attribute names (``Blur``, ``Conv``, ``Act``, ``conv``, ``modulation``, ...) are the official
state-dict names, so official checkpoints load as they are.
"""

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2sae.utils.choices import Choice

from .ops import fused_leaky_relu, make_fir_kernel, upfirdn2d

SQRT2 = math.sqrt(2.0)


class FIRKernel(nn.Module):
    """Holds a constant FIR kernel buffer (``kernel``, K x K) and nothing else.

    Used for ``G.ToRGB.upsample``: the official checkpoint stores that kernel although the
    generator never runs it.
    """

    def __init__(self, taps: Sequence[float], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(taps, gain))


class Blur(FIRKernel):
    """FIR low-pass: ``upfirdn2d(pad(x), kernel)``; pad = (p0, p1) zeros, or reflection."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0, reflection: bool = False):
        super().__init__(taps, gain)
        self.pad, self.reflection = tuple(pad), reflection

    def forward(self, x: Tensor) -> Tensor:
        if self.reflection:
            p0, p1 = self.pad
            return upfirdn2d(F.pad(x, (p0, p1, p0, p1), mode="reflect"), self.kernel)
        return upfirdn2d(x, self.kernel, pad=self.pad)


class FusedLeakyReLU(nn.Module):
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``, bias per channel (init 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: ``conv2d(x, W / sqrt(in * k * k)) + b``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear with equalised learning rate: ``x (W / sqrt(in))^T + b``, optionally fused lrelu."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias)
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d -> [FusedLeakyReLU]; children named ``Blur``, ``RefPad``, ``Conv``, ``Act``.

    With ``downsample`` the blur (total padding ``len(taps) - 2 + k - 1`` unless ``pad`` is given)
    precedes a stride-2 conv without padding. The conv has a bias only when not activated.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        downsample: bool = False,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
        pad: int | None = None,
        reflection_pad: bool = False,
    ):
        layers = OrderedDict()
        stride, padding = 1, kernel_size // 2 if pad is None else pad
        if downsample:
            total = len(blur_taps) - 2 + kernel_size - 1 if pad is None else pad
            layers["Blur"] = Blur(blur_taps, ((total + 1) // 2, total // 2), reflection=reflection_pad)
            stride, padding = 2, 0
        elif reflection_pad:
            layers["RefPad"] = nn.ReflectionPad2d(padding)
            padding = 0
        layers["Conv"] = EqualConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias and not activate)
        if activate:
            if not bias:
                raise ValueError("ConvLayer(activate=True, bias=False) is not part of the SAE architecture")
            layers["Act"] = FusedLeakyReLU(out_ch)
        super().__init__(layers)


class ResBlock(nn.Module):
    """``(conv2(conv1(x)) + skip(x)) / sqrt(2)``; conv2 and the 1x1 bias-free skip downsample by 2."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        reflection_pad: bool = False,
        downsample: bool = True,
    ):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, reflection_pad=reflection_pad)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample, blur_taps, reflection_pad=reflection_pad)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample, blur_taps, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class ModulatedConv2d(nn.Module):
    """SAE's modulated conv: ``conv(x * s, demod(W / sqrt(in k k)))`` with ``s = A(style)``.

    The style ``s`` (B x in, bias init 1) is RMS-normalised when ``demodulate``; the weight is
    demodulated from the *unmodulated* weight, so it is the same for every sample and the
    modulation is applied to the activations. ``upsample``: stride-2 transposed conv, then blur.
    Weight is stored as 1 x out x in x k x k (official layout).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        if upsample:
            p = len(blur_taps) - 2 - (kernel_size - 1)
            self.blur = Blur(blur_taps, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        s = self.modulation(style)
        weight = self.scale * self.weight[0]
        if self.demodulate:
            s = s * torch.rsqrt(s.pow(2).mean(1, keepdim=True) + 1e-8)
            weight = weight * torch.rsqrt(weight.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        x = x * s[:, :, None, None]
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        return F.conv2d(x, weight, padding=self.padding)


NoiseMode = Choice("NoiseMode", {"random": "random", "zero": "zero"})  # NoiseInjection.mode


class NoiseInjection(nn.Module):
    """``x + weight * n`` with ``n ~ N(0, 1)`` of shape B x 1 x H x W (weight init 0).

    ``mode``: ``"random"`` draws fresh noise each call (official behaviour), ``"zero"`` adds none.
    """

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.mode = "random"

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "zero":
            return x
        b, _, h, w = x.shape
        return x + self.weight * torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)


class StyledConv(nn.Module):
    """ModulatedConv2d -> NoiseInjection (if ``use_noise``) -> FusedLeakyReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        use_noise: bool = True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)
        self.use_noise = use_noise

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        x = self.conv(x, style)
        if self.use_noise:
            x = self.noise(x)
        return self.activate(x)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB without demodulation, plus a bias (1 x 3 x 1 x 1). No activation."""

    def __init__(self, in_ch: int, style_dim: int, blur_taps: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.upsample = FIRKernel(blur_taps, gain=4.0)  # stored by the official checkpoint, never run
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.conv(x, style) + self.bias
