"""Low-level ops of the Swapping Autoencoder in plain PyTorch (no compiled extensions).

``upfirdn2d`` is the fast path (one depthwise ``conv2d``); ``upfirdn2d_reference`` is the slow,
obvious definition used by the tests to check it.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)


def normalize(v: Tensor) -> Tensor:
    """L2-normalise along dim 1 (channels): ``v / sqrt(sum v^2 + 1e-8)``. B x C [x H x W]."""
    return v * torch.rsqrt(torch.sum(v**2, dim=1, keepdim=True) + 1e-8)


def make_fir_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """Separable FIR kernel ``outer(taps, taps) / sum * gain`` (float32, K x K)."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def fused_leaky_relu(x: Tensor, bias: Tensor) -> Tensor:
    """``leaky_relu(x + bias[c], 0.2) * sqrt(2)`` with the bias broadcast along dim 1."""
    bias = bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x + bias, negative_slope=LEAKY_SLOPE) * LEAKY_GAIN


def _upsample_zeros(x: Tensor, up: int) -> Tensor:
    """Insert ``up - 1`` zeros after every sample along H and W: B x C x H*up x W*up."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h, 1, w, 1)
    x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
    return x.reshape(b, c, h * up, w * up)


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter, downsample; per channel. B x C x H x W.

    ``pad = (p0, p1)``: p0 before and p1 after on both axes (negative values crop).
    Output side: ``(in * up + p0 + p1 - k) // down + 1``.
    """
    if up > 1:
        x = _upsample_zeros(x, up)
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    channels = x.shape[1]
    weight = kernel.flip(0, 1).to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, stride=down, groups=channels)


def upfirdn2d_reference(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Slow reference of :func:`upfirdn2d`: an explicit sum over the kernel taps."""
    if up > 1:
        x = _upsample_zeros(x, up)
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    kh, kw = kernel.shape
    out_h, out_w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    flipped = kernel.flip(0, 1).to(x.dtype)
    out = x.new_zeros(x.shape[0], x.shape[1], out_h, out_w)
    for i in range(kh):
        for j in range(kw):
            out = out + flipped[i, j] * x[:, :, i : i + out_h, j : j + out_w]
    return out[:, :, ::down, ::down]
