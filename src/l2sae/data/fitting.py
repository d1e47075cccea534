"""Decoded images and masks fitted to the training size: a centre square, resized, as uint8 arrays."""

from __future__ import annotations

import numpy as np
from PIL import Image


def square_resize(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """Centre-crop to a square, then resize to ``size`` x ``size`` (no-op for square images of that size)."""
    width, height = image.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), resample)
    return image


def image_array(image: Image.Image, size: int) -> np.ndarray:
    """RGB image -> 3 x size x size uint8 array, bicubic with antialiasing (PIL widens the filter when shrinking)."""
    resized = square_resize(image, size, Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1))


def mask_array(mask: Image.Image, size: int) -> np.ndarray:
    """Grayscale mask -> size x size bool array, nearest-neighbour (no blended labels at edges)."""
    return np.asarray(square_resize(mask, size, Image.Resampling.NEAREST)) > 127
