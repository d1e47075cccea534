"""What the page asks of the editor: check an uploaded photo, prepare it once, edit it.

The only place the app touches the editor and the photo pipeline (``L2SAEEditor.prepare_photo`` /
``edit_photo``: faces found, aligned, encoded once, edited and pasted back at full resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from l2sae.editing import L2SAEEditor
from l2sae.editing.photo import PhotoEditResult, PreparedPhoto
from l2sae.photos import FaceNotFoundError
from l2sae.photos.detection import smallest_detectable_face
from l2sae.utils.errors import ImageFileError, ImageTooLargeError
from l2sae.utils.images import open_image, opened_image

MODES: dict[str, str] = {  # page label -> editor mode
    "random style": "style",
    "style from a reference": "swap_style",
    "structure from a donor": "swap_structure",
}
ALL_FACES = "all faces"
OUTLINE_COLOURS = {"edited": (40, 220, 90), "skipped": (160, 160, 160)}


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
        with opened_image(path, limits.max_pixels):  # the header only; PNG, JPEG and WebP files only
            pass
    except ImageTooLargeError as error:  # the lower of max_pixels and Pillow's own limit (error.max_pixels)
        size = f"{error.size[0]} x {error.size[1]} px, " if error.size else ""
        own = limits.max_pixels <= error.max_pixels
        limit = f"{min(limits.max_pixels, error.max_pixels) / 1e6:g} megapixels"
        limit += " (max_pixels)" if own else " (the image library's limit)"
        raise PhotoError(
            f"{name} is {size}{error.pixels / 1e6:.1f} megapixels; this page accepts up to {limit}. Scale the photo down."
        ) from error
    except ImageFileError as error:
        raise PhotoError(f"{name} is not an image; upload a PNG, JPEG or WebP photo") from error
    try:
        return open_image(path, "RGB", limits.max_pixels)
    except ImageFileError as error:
        raise PhotoError(f"{name} could not be decoded: the file is corrupt or cut short ({error.problem})") from error


def prepare(editor: L2SAEEditor, photo: Image.Image | np.ndarray, name: str, faces: str | int = "all") -> PreparedPhoto:
    """Find, align and encode the faces of ``photo`` once (``faces``: "all", "largest" or a face number)."""
    pixels = np.array(photo)  # a writable copy for torch
    try:
        return editor.prepare_photo(pixels, align="auto", faces=faces)
    except FaceNotFoundError as error:  # its advice names edit.py's align=, which the page does not have
        size, smallest = editor.image_size, smallest_detectable_face(*pixels.shape[:2])
        raise PhotoError(
            f"{name}: no face found; upload a photo with a frontal face at least ~{smallest} px wide, or a picture "
            f"of one face of exactly {size} x {size} px (edited as it is)"
        ) from error
    except ValueError as error:  # no face, faces too small, ...: the pipeline's messages, named after the upload
        raise PhotoError(f"{name}: {str(error).removeprefix('the photo array: ')}") from error


def face_label(index: int) -> str:
    return f"face {index}"


def face_choices(prepared: PreparedPhoto) -> list[str]:
    """The face chooser's entries: all faces, then each face that can be edited (numbered from the left)."""
    return [ALL_FACES] + [face_label(i) for i, face in enumerate(prepared.faces) if face.status == "edited"]


def face_notes(prepared: PreparedPhoto) -> str:
    """One line per face that is not edited, with the reason."""
    return " ".join(
        f"{face_label(i)} skipped: {face.reason}." for i, face in enumerate(prepared.faces) if face.status != "edited"
    )


def face_index(label: str) -> str | int:
    """The photo pipeline's ``faces`` choice of a chooser entry."""
    return "all" if label == ALL_FACES else int(label.removeprefix("face "))


def outlined(prepared: PreparedPhoto) -> Image.Image:
    """The photo with each face's alignment square and number drawn on it (none for a pre-aligned picture)."""
    image = prepared.image
    if prepared.aligned.align == "as_is":
        return image
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for index, face in enumerate(prepared.faces):
        corners = [tuple(point) for point in np.asarray(face.quad, dtype=float)]
        colour = OUTLINE_COLOURS.get(face.status, (255, 255, 255))
        draw.line(corners + corners[:1], fill=colour, width=width)
        # ~20 px on the page's 300 px views, but no wider than the face's square, and inside the photo
        size = max(12, min(round(max(image.size) / 14), round(face.side / 4)))
        text_width = draw.textlength(face_label(index), font_size=size)
        left = min(max(0.0, min(x for x, _ in corners)), max(0.0, image.width - text_width))
        top_left = (left, max(float(size), min(y for _, y in corners)))
        draw.text(top_left, face_label(index), fill=colour, font_size=size, stroke_width=max(1, size // 10),
                  stroke_fill=(0, 0, 0), anchor="lb")  # fmt: skip
    return image


def edit(
    editor: L2SAEEditor,
    prepared: PreparedPhoto,
    rois: Sequence[str],
    mode: str,
    *,
    strength: float = 1.0,
    seed: int = 0,
    partner: PreparedPhoto | None = None,
) -> PhotoEditResult:
    """One edit of a prepared photo; ``mode`` is an editor mode, ``partner`` the reference or donor."""
    return editor.edit_photo(
        prepared,
        list(rois),
        mode=mode,
        strength=strength,
        seed=seed,
        reference=partner if mode == "swap_style" else None,
        donor=partner if mode == "swap_structure" else None,
    )
