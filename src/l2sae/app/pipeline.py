"""What the page asks of the editor: check an uploaded photo, prepare it once, edit it.

The only place the app touches the editor and the photo pipeline. Images cross this boundary as
PIL images at the photo's own size; the matte as an H x W float array in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor, resize, to_pil_image

from l2sae.editing import EncodedFaces, L2SAEEditor
from l2sae.editing.placement import Placement, fit_to_model, paste_back
from l2sae.utils.errors import ImageFileError
from l2sae.utils.images import open_image

MODES: dict[str, str] = {  # page label -> editor mode
    "random style": "style",
    "style from a reference": "swap_style",
    "structure from a donor": "swap_structure",
}
ALL_FACES = "all faces"


class PhotoError(ValueError):
    """An upload the page cannot use; the message is shown on the page as it is."""


@dataclass(frozen=True)
class UploadLimits:
    """max_upload_mb: the largest file accepted (MiB); max_pixels: the largest image (width x height)."""

    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000


def open_upload(path: str | Path, limits: UploadLimits, name: str | None = None) -> Image.Image:
    """The uploaded file as an RGB image (:func:`l2sae.utils.images.open_image`), or a PhotoError naming
    ``name``. The file's size is checked before reading it, its pixel count before decoding it."""
    path = Path(path)
    name = name or path.name
    megabytes = path.stat().st_size / 2**20
    if megabytes > limits.max_upload_mb:
        raise PhotoError(
            f"{name} is {megabytes:.1f} MB; this page accepts photos up to {limits.max_upload_mb:g} MB "
            "(max_upload_mb). Make the photo smaller or start the app with a larger max_upload_mb."
        )
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise PhotoError(f"{name} is not an image; upload a PNG, JPEG or WebP photo") from error
    if width * height > limits.max_pixels:
        raise PhotoError(
            f"{name} is {width} x {height} px ({width * height / 1e6:.1f} megapixels); this page accepts "
            f"up to {limits.max_pixels / 1e6:g} megapixels (max_pixels). Scale the photo down."
        )
    try:
        return open_image(path, "RGB", max_pixels=None)
    except ImageFileError as error:
        raise PhotoError(f"{name} could not be decoded: the file is corrupt or cut short ({error.problem})") from error


@dataclass(frozen=True)
class FaceInfo:
    """One face of a photo as the page lists it."""

    label: str
    edited: bool
    reason: str = ""


@dataclass(eq=False)
class PreparedUpload:
    """A photo encoded once: its pixels (3 x H x W in [-1, 1]), the model's view of it and its codes."""

    photo: torch.Tensor
    view: torch.Tensor
    placement: Placement
    encoded: EncodedFaces
    faces: tuple[FaceInfo, ...]


@dataclass(frozen=True)
class PhotoEdit:
    """image: the whole photo after the edit; matte: H x W in [0, 1], where the edit was blended in."""

    image: Image.Image
    matte: np.ndarray


def prepare(editor: L2SAEEditor, photo: Image.Image) -> PreparedUpload:
    """Encode the photo once (the whole picture taken as one aligned face)."""
    pixels = pil_to_tensor(photo).float() / 127.5 - 1.0
    view, placement = fit_to_model(pixels, editor.image_size)
    encoded = editor.encode(view.unsqueeze(0))
    return PreparedUpload(pixels, view, placement, encoded, (FaceInfo("face 1", True),))


def face_choices(prepared: PreparedUpload) -> list[str]:
    """The face chooser's entries: every face, then each face that can be edited."""
    return [ALL_FACES] + [face.label for face in prepared.faces if face.edited]


def edit(
    editor: L2SAEEditor,
    prepared: PreparedUpload,
    rois: Sequence[str],
    mode: str,
    *,
    strength: float = 1.0,
    seed: int = 0,
    partner: PreparedUpload | None = None,
    face: str = ALL_FACES,
) -> PhotoEdit:
    """One edit of a prepared photo; ``mode`` is an editor mode, ``partner`` the reference or donor."""
    if mode == "style":
        result = editor.edit_style(prepared.encoded, rois, strength=strength, seed=seed)
    elif mode == "swap_style":
        result = editor.swap_style(prepared.encoded, partner.encoded, rois)
    else:
        result = editor.swap_structure(prepared.encoded, partner.encoded, rois)
    image = paste_back(prepared.photo, prepared.view, result.images[0].cpu(), prepared.placement)
    height, width = prepared.photo.shape[-2:]
    matte = resize(result.matte[0].cpu(), [height, width], antialias=False)[0].clamp(0.0, 1.0).numpy()
    pixels = ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return PhotoEdit(to_pil_image(pixels), matte)
