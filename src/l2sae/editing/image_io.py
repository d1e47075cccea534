"""Reading face images of any size and format, fitting them to the model, writing results.

Images are float tensors in [-1, 1], 3 x H x W. Inputs may be PNG, JPEG or WebP, grayscale,
RGB, RGBA or palette images; transparent pixels are put on white. The model sees a square
S x S view of each image (the whole image squashed, or its centre square); an edit made on
that view is written back at the original size by adding the change to the original
pixels, so pixels the edit did not touch stay exactly as they were. Outputs are written
atomically (temporary name in the same folder, then a rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor, resize, to_pil_image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
SIZE_MODES: tuple[str, ...] = ("resize", "center_crop")
_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# what PIL raises for files that are not (whole, sane) images
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


class ImageFileError(ValueError):
    """An input is not a readable image, or an output path is not allowed; the message names the file."""


def list_images(path: str | os.PathLike) -> list[Path]:
    """The image files named by ``path``: the file itself, or a folder's images (sorted, not recursive).

    A folder contributes files with a PNG, JPEG or WebP suffix (any case), skipping hidden files.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; point input= at a face image or a folder of them")
    if path.is_file():
        return [path]
    images = sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise ImageFileError(
            f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); "
            "put face images there or point input= at an image file"
        )
    return images


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image: alpha composited on white, 16-bit grayscale rescaled to 8 bits."""
    if image.mode.startswith("I"):  # 16-bit grayscale PNG: 0..65535 -> 0..255
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(values.round().clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _unreadable(path: Path, error: Exception) -> ImageFileError:
    return ImageFileError(
        f"{path}: not a readable image ({error}); expected a PNG, JPEG or WebP file - replace or remove it"
    )


def check_image(path: str | os.PathLike) -> None:
    """Fail early, naming the file, when ``path`` is missing or its header is not an image's (cheap: no decoding)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.verify()
    except _DECODE_ERRORS as error:
        raise _unreadable(path, error) from error


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode one image file into a 3 x H x W float tensor in [-1, 1] (EXIF orientation applied)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image = _to_rgb(ImageOps.exif_transpose(image))
    except _DECODE_ERRORS as error:
        raise _unreadable(path, error) from error
    return pil_to_tensor(image).float() / 127.5 - 1.0


@dataclass(frozen=True)
class Placement:
    """Where the model's square view sits in the original image, in original pixels.

    original_size: (H, W) of the original; box: (top, left, height, width) of the viewed area.
    """

    original_size: tuple[int, int]
    box: tuple[int, int, int, int]


def fit_to_model(image: torch.Tensor, size: int, mode: str = "resize") -> tuple[torch.Tensor, Placement]:
    """Square ``size`` x ``size`` view of a 3 x H x W image, and where it came from.

    mode "resize" squashes the whole image (the aspect ratio comes back in :func:`paste_back`);
    "center_crop" takes the central min(H, W) square.
    """
    if mode not in SIZE_MODES:
        raise ValueError(f"size_mode: unknown mode {mode!r}; choose from {', '.join(SIZE_MODES)}")
    height, width = image.shape[-2:]
    if mode == "resize":
        box = (0, 0, height, width)
    else:
        side = min(height, width)
        box = ((height - side) // 2, (width - side) // 2, side, side)
    top, left, box_height, box_width = box
    view = image[..., top : top + box_height, left : left + box_width]
    if (box_height, box_width) != (size, size):
        view = resize(view, [size, size], antialias=True)
    return view.clamp(-1.0, 1.0), Placement(original_size=(height, width), box=box)


def paste_back(
    original: torch.Tensor, model_input: torch.Tensor, edited: torch.Tensor, placement: Placement
) -> torch.Tensor:
    """Carry an edit made on the model's view over to the original image.

    original: 3 x H x W; model_input, edited: 3 x S x S (the view before and after the edit), all in [-1, 1].
    The change ``edited - model_input`` is resized to the viewed box and added to the original there,
    so the original's fine detail survives and pixels the edit left alone stay exactly the same.
    """
    top, left, box_height, box_width = placement.box
    change = edited - model_input
    if change.shape[-2:] != (box_height, box_width):
        change = resize(change, [box_height, box_width], antialias=False)
    result = original.clone()
    box = result[..., top : top + box_height, left : left + box_width]
    result[..., top : top + box_height, left : left + box_width] = (box + change).clamp(-1.0, 1.0)
    return result


def write_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a 3 x H x W image in [-1, 1] atomically; the format follows the suffix."""
    path = Path(path)
    image_format = _SUFFIX_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ImageFileError(f"{path}: unsupported output suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = ((image.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        to_pil_image(pixels).save(temporary, format=image_format)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
