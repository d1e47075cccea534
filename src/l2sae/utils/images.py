"""The one image I/O of the project: listing, decoding, converting and writing image files.

Training sets, baseline folders, ``edit.py`` and the app all decode through :func:`open_image`, so a
file gives the same pixels wherever it is read: EXIF orientation applied; grayscale, palette, CMYK and
16-bit files turned into 8-bit RGB; transparency laid on white. Only PNG, JPEG and WebP files reach a
decoder (whatever their name; no other Pillow plugin, e.g. EPS through Ghostscript, ever runs). The pixel
count is read from the header and checked against ``max_pixels`` (and Pillow's own decompression-bomb limit)
before anything is decoded, and the whole file is decoded (a truncated JPEG fails here, not half-way through a
run). Images as tensors are float 3 x H x W in [-1, 1].
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from l2sae.utils.errors import ImageFileError, ImageTooLargeError
from l2sae.utils.files import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: a 6300 x 6300 photo; about 120 MB decoded
_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")  # the only Pillow plugins a file is offered to
# what PIL raises for files that are not (whole, sane) images; a truncated file raises OSError on load
_DECODE_ERRORS = (OSError, SyntaxError, ValueError)
# Pillow refuses headers of more than twice Image.MAX_IMAGE_PIXELS (a process-wide setting, left as it is)
_PILLOW_BOMB = re.compile(r"Image size \((\d+) pixels\)")


def is_image_file(path: Path) -> bool:
    """A visible file with one of :data:`IMAGE_SUFFIXES` (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(path: str | os.PathLike, key: str = "input") -> list[Path]:
    """The image files named by ``path``: the file itself, or a folder's images (sorted, not recursive).

    ``key`` is the setting that named ``path``, for the error messages.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; point {key}= at a face image or a folder of them")
    if path.is_file():
        return [path]
    images = sorted(p for p in path.iterdir() if is_image_file(p))
    if not images:
        raise ImageFileError(
            path,
            f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})",
            f"put face images there or point {key}= at one",
        )
    return images


def _eight_bit_rgb(image: Image.Image, mode: str) -> Image.Image:
    """``mode`` ("RGB" or "L") view of any decoded PIL image; 16-bit values are rescaled, alpha laid on white."""
    if image.mode.startswith("I"):  # 16-bit (or 32-bit integer) grayscale: 0..65535 -> 0..255
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(values.round().clip(0, 255).astype(np.uint8))
    if mode == "RGB" and (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert(mode)


def _upright(image: Image.Image, name: str) -> Image.Image:
    """``image`` turned as its EXIF orientation says; unturned (and a warning naming ``name``) if its EXIF is corrupt."""
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, struct.error) as error:  # Pillow's TIFF reader on a damaged EXIF block
        log.warning("%s: corrupt EXIF block (%s); the image is used as stored, not rotated", name, error)
        return image


def rgb_view(image: Image.Image) -> Image.Image:
    """8-bit RGB of an already decoded PIL image, converted like a file by :func:`open_image` (EXIF, alpha, 16-bit)."""
    return _eight_bit_rgb(_upright(image, "the image"), "RGB")


@contextmanager
def opened_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[Image.Image]:
    """``Image.open(path)`` offered to :data:`IMAGE_FORMATS` only, header read, nothing decoded.

    Raises :class:`ImageTooLargeError` when the header declares more than ``max_pixels`` pixels (None: no cap
    but Pillow's own decompression-bomb limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``, which also caps a larger
    ``max_pixels``), and :class:`ImageFileError` naming the file for anything that is not a PNG, JPEG or WebP
    image, whatever its name.
    """
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as error:
        found = _PILLOW_BOMB.search(str(error))
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise ImageTooLargeError(path, int(found[1]) if found else limit + 1, limit) from error
    except UnidentifiedImageError as error:
        raise ImageFileError(
            path,
            "not a readable image (not a PNG, JPEG or WebP file)",
            "convert it to one of these, or replace or delete the file",
        ) from error
    except _DECODE_ERRORS as error:  # a damaged header
        raise ImageFileError(path, f"not a readable image ({type(error).__name__}: {error})") from error
    with image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(path, width * height, max_pixels, (width, height))
        yield image


def open_image(path: str | os.PathLike, mode: str = "RGB", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a whole image file as 8-bit ``mode`` ("RGB", or "L" for masks), EXIF orientation applied.

    Fails with :class:`ImageFileError` naming the file when it is not a whole, readable image or when its
    header declares more than ``max_pixels`` pixels (None: no cap), before decoding it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    with opened_image(path, max_pixels) as image:
        try:
            image.load()
            return _eight_bit_rgb(_upright(image, str(path)), mode)
        except _DECODE_ERRORS as error:
            raise ImageFileError(path, f"not a readable image ({type(error).__name__}: {error})") from error


def check_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Fail now, naming the file, if :func:`read_image` would fail on it (decodes the whole file)."""
    open_image(path, "RGB", max_pixels)


def to_unit_range(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 in [-1, 1]."""
    return torch.as_tensor(np.asarray(pixels)).float().div_(127.5).sub_(1.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Float pixels in [-1, 1] (any shape) -> uint8 on the CPU, rounded."""
    return ((image.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode one image file (see :func:`open_image`) into a 3 x H x W float tensor in [-1, 1]."""
    return to_unit_range(pil_to_tensor(open_image(path, "RGB", max_pixels)))


def write_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a 3 x H x W image in [-1, 1] atomically; the format follows the suffix (PNG, JPEG or WebP)."""
    path = Path(path)
    image_format = _SUFFIX_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ImageFileError(path, "unsupported output suffix", f"use one of {', '.join(IMAGE_SUFFIXES)}")
    with atomic_path(path) as temporary:
        to_pil_image(to_uint8(image)).save(temporary, format=image_format)
    return path
