"""Photos in any common form (path, PIL image, array) as full-resolution RGB uint8 arrays."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from l2sae.utils.images import open_image, rgb_view

Photo = str | os.PathLike | Image.Image | np.ndarray
PHOTO_MAX_PIXELS = 50_000_000  # an 8000 x 6000 photo (48 megapixels) is accepted


class PhotoError(ValueError):
    """A photo cannot be used (not an image array, no usable face, ...); the message names the photo."""


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 of an H x W (gray, uint8 or 16-bit), H x W x 3 or H x W x 4 (alpha on white) uint8 array."""
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if (array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 4) or (
        array.ndim == 2 and array.dtype in (np.uint8, np.uint16)
    ):
        return np.asarray(rgb_view(Image.fromarray(np.ascontiguousarray(array))))
    raise PhotoError(
        f"the photo array: expected uint8 H x W, H x W x 3 or H x W x 4 (or uint16 H x W), "
        f"got {array.dtype} {array.shape}"
    )


def load_photo(photo: Photo, max_pixels: int | None = PHOTO_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """(H x W x 3 uint8 RGB at full resolution, a name for messages) of a path, PIL image or array.

    Files are decoded by :func:`l2sae.utils.images.open_image` (EXIF orientation applied; grayscale, CMYK,
    16-bit and palette photos become RGB, transparency is laid on white; more than ``max_pixels`` pixels
    are refused before decoding, naming the file); PIL images are converted the same way.
    """
    if isinstance(photo, np.ndarray):
        return _array_to_rgb(photo), "the photo array"
    if isinstance(photo, Image.Image):
        return np.asarray(rgb_view(photo)), "the photo"
    return np.asarray(open_image(photo, "RGB", max_pixels)), str(photo)
