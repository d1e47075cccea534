"""Reading, resizing and atomically writing images, masks and arrays."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# PIL raises these for unreadable, truncated or corrupt files (a truncated JPEG raises OSError on load).
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class BadFileError(RuntimeError):
    """An image or mask file cannot be decoded; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(
            f"cannot read {self.path} ({reason}); replace or delete the file, "
            f"or set data.on_bad_file=skip to drop such samples"
        )

    def __reduce__(self):  # survive the trip back from DataLoader workers
        return type(self), (self.path, self.reason)


def _open(path: str | os.PathLike, mode: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            if mode == "RGB" and (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
                image = image.convert("RGBA")  # composite transparency on white below, not on black
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            return image.convert(mode)
    except _DECODE_ERRORS as error:
        raise BadFileError(path, f"{type(error).__name__}: {error}") from error


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode any image (grayscale, palette, RGBA, CMYK, ...) as RGB; transparency is laid on white."""
    return _open(path, "RGB")


def read_mask(path: str | os.PathLike) -> Image.Image:
    """Decode a mask file as 8-bit grayscale (CelebAMask-HQ parts are 0 / 255, stored as L, P or RGB)."""
    return _open(path, "L")


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


def to_unit_range(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 3 x H x W -> float32 3 x H x W in [-1, 1]."""
    return torch.as_tensor(np.asarray(image)).float().div_(127.5).sub_(1.0)


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` for writing before ``os.replace`` (same folder, same file system)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    temp = temporary_sibling(path)
    try:
        with open(temp, "xb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
