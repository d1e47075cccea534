"""Decode only a window of the image: the generator's upsampling blocks run on the features they need.

The generator spends most of its work in the upsampling blocks at high resolution. An edit that
changes pixels only inside a region's matte needs the decode only there: :func:`decode_window` runs
the resolution-preserving head on the whole structure code, then each upsampling block on the window
of its input that its output window reads, worked out backwards from the wanted pixels through every
layer's reach (3x3 convolutions, the stride-2 transposed convolution and its FIR blur, the bilinear
skip). Where a window meets the true image border it extends to that border, so the convolutions pad
exactly as in the full decode; inside, the window keeps every pixel the kept outputs read. With noise
off (``set_noise("zero")``) the window equals the full decode's pixels up to float rounding.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from .generator import Generator, UpsamplingResBlock
from .ops import normalize


class Box(NamedTuple):
    """Pixel rows [top, bottom) and columns [left, right) of an image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> int:
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)


def _ceil_half(n: int) -> int:
    return -(-n // 2)


def block_input_interval(block: UpsamplingResBlock, start: int, stop: int, size: int) -> tuple[int, int]:
    """The input interval [start', stop') (at the block's input side ``size``) that the block's outputs
    [start, stop) read along one axis, clipped to the image; read off the block's layers."""
    upsample = block.conv1.conv
    k1, k2 = upsample.weight.shape[-1], block.conv2.conv.weight.shape[-1]
    taps, pad_before = upsample.blur.kernel.shape[-1], upsample.blur.pad[0]
    # conv2 (k2 x k2, same padding) reads conv1's outputs [first, last]
    first, last = start - k2 // 2, stop - 1 + k2 // 2
    # conv1's blur output o reads transposed-conv outputs o - pad_before .. o - pad_before + taps - 1;
    # transposed-conv output u = 2 i + t (0 <= t < k1) reads input i
    conv_first, conv_last = _ceil_half(first - pad_before - (k1 - 1)), (last - pad_before + taps - 1) // 2
    # the skip, bilinear x2 (align_corners=False) after a 1x1 conv: output o reads inputs (o - 1) // 2 .. o // 2
    skip_first, skip_last = (start - 1) // 2, stop // 2
    return max(0, min(conv_first, skip_first)), min(size, max(conv_last, skip_last) + 1)


def input_windows(generator: Generator, box: Box, code_size: tuple[int, int]) -> list[Box]:
    """The window of each upsampling block's input (in order) needed for the image pixels ``box``.

    code_size: (h, w) of the structure code; the i-th upsampling block's input is h 2^i x w 2^i.
    """
    blocks = [getattr(generator, name) for name in generator.blocks]
    upsampling = [block for block in blocks if isinstance(block, UpsamplingResBlock)]
    windows, wanted = [], box
    for level in reversed(range(len(upsampling))):
        height, width = code_size[0] * 2**level, code_size[1] * 2**level
        top, bottom = block_input_interval(upsampling[level], wanted.top, wanted.bottom, height)
        left, right = block_input_interval(upsampling[level], wanted.left, wanted.right, width)
        wanted = Box(top, left, bottom, right)
        windows.append(wanted)
    return windows[::-1]


def decode_window(
    generator: Generator, structure: Tensor, texture: Tensor, box: Box, normalize_structure: bool = True
) -> Tensor:
    """The pixels ``box`` of ``generator(structure, texture)``: B x 3 x (bottom - top) x (right - left).

    structure B x C_s x h x w, texture B x C_t, as for :meth:`Generator.forward`.
    """
    if not (0 <= box.top < box.bottom and 0 <= box.left < box.right):
        raise ValueError(f"decode_window: empty box {box}")
    blocks = [(name, getattr(generator, name)) for name in generator.blocks]
    upsampling = [block for _, block in blocks if isinstance(block, UpsamplingResBlock)]
    scale = 2 ** len(upsampling)
    if box.bottom > structure.shape[-2] * scale or box.right > structure.shape[-1] * scale:
        raise ValueError(f"decode_window: box {box} exceeds the image of {tuple(structure.shape[-2:])} x {scale}")
    texture = normalize(texture)
    x = generator.SpatialCodeModulation(normalize(structure) if normalize_structure else structure, texture)
    for _, block in blocks:
        if not isinstance(block, UpsamplingResBlock):
            x = block(x, texture)
    windows = input_windows(generator, box, tuple(structure.shape[-2:]))
    return generator.ToRGB(upsample_in_windows(upsampling, x, texture, windows, box), texture)


def upsample_in_windows(
    blocks: list[UpsamplingResBlock], features: Tensor, texture: Tensor, windows: list[Box], box: Box
) -> Tensor:
    """Run upsampling ``blocks`` on the whole-image ``features`` (B x C x h x w, the first block's input) only
    where ``box`` needs them: each block on its input window (``windows``, one per block, from
    :func:`input_windows`). Returns the last block's output in ``box``. texture: B x C_t, normalised."""
    x = features[..., windows[0].top : windows[0].bottom, windows[0].left : windows[0].right]
    for block, window, wanted in zip(blocks, windows, [*windows[1:], box]):
        x = block(x, texture)  # covers rows [2 window.top, 2 window.bottom), columns alike
        top, left = wanted.top - 2 * window.top, wanted.left - 2 * window.left
        x = x[..., top : top + wanted.bottom - wanted.top, left : left + wanted.right - wanted.left]
    return x
