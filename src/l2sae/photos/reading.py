"""Photos in any common form (path, PIL image, array) as full-resolution RGB uint8 arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Photo = str | os.PathLike | Image.Image | np.ndarray
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


class PhotoError(ValueError):
    """A photo cannot be used (unreadable, no usable face, ...); the message names the photo."""


def _rescaled_to_8_bits(values: np.ndarray) -> np.ndarray:
    """uint8 view of integer or float pixel values: 16-bit (0..65535) and float (0..1) ranges are rescaled."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if np.issubdtype(values.dtype, np.floating):
        return (values.astype(np.float64).clip(0.0, 1.0) * 255.0).round().astype(np.uint8)
    if values.max(initial=0) > 255:  # 16-bit
        return (values.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    return values.clip(0, 255).astype(np.uint8)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """H x W x 3 uint8 of any PIL mode: 16-bit and float rescaled, CMYK converted, alpha put on white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _array_to_rgb(np.asarray(image))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("RGB"))


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """H x W (gray), H x W x 1/3/4 (RGBA: alpha on white) of uint8, uint16 or float in [0, 1] -> H x W x 3 uint8."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.repeat(_rescaled_to_8_bits(array)[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise PhotoError(f"expected an H x W or H x W x 3 (or 4) array, got shape {array.shape}")
    pixels = _rescaled_to_8_bits(array)
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255.0
        pixels = (pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(pixels)


def load_photo(photo: Photo) -> tuple[np.ndarray, str]:
    """(H x W x 3 uint8 RGB at full resolution, a name for messages) of a path, PIL image or array.

    Files are decoded with their EXIF orientation applied; grayscale, CMYK, 16-bit, palette and
    transparent (put on white) photos all become RGB.
    """
    if isinstance(photo, np.ndarray):
        return _array_to_rgb(photo), "the photo array"
    if isinstance(photo, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(photo)), "the photo"
    path = Path(photo)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such photo")
    try:
        with Image.open(path) as image:
            return _pil_to_rgb(ImageOps.exif_transpose(image)), str(path)
    except _DECODE_ERRORS as error:
        raise PhotoError(f"{path}: not a readable image ({error}); expected a PNG, JPEG or WebP photo") from error
