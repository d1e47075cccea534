"""Editing whole photos: :mod:`l2sae.photos` (find, align, paste back) around the editor's region edits.

:meth:`L2SAEEditor.prepare_photo` finds and aligns the faces and encodes their crops once;
:meth:`L2SAEEditor.edit_photo` edits every chosen face in one batch and pastes each face's global edit
back inside its matte with the inverse of its alignment, at the photo's resolution, where the matte's seam is
smoothed as in the editor's own composite. Re-using a
:class:`PreparedPhoto` makes a new strength, seed or region cost at most one decode per face batch (the
caches of its :class:`~l2sae.editing.editor.EncodedFaces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from l2sae.photos import AlignedPhoto, PhotoFace, find_faces
from l2sae.photos.reading import Photo
from l2sae.utils.choices import Choice

if TYPE_CHECKING:
    from l2sae.editing.editor import EditResult, EncodedFaces, L2SAEEditor


class EditMode(Choice):
    """What an edit does (the ``mode`` setting): restyle the region, take a reference's style, or a donor's
    structure."""

    style = "style"
    swap_style = "swap_style"
    swap_structure = "swap_structure"


@dataclass(frozen=True, eq=False)
class PreparedPhoto:
    """A photo ready to edit. aligned: the full-resolution photo, every face (box, 68 landmarks, alignment
    quad, transform, status and reason) and the aligned crops (:class:`l2sae.photos.AlignedPhoto`);
    encoded: the crops of the faces to edit, encoded once by both networks (E faces)."""

    aligned: AlignedPhoto
    encoded: EncodedFaces

    @property
    def image(self) -> Image.Image:
        """The photo, RGB at full resolution."""
        return Image.fromarray(self.aligned.image)

    @property
    def faces(self) -> tuple[PhotoFace, ...]:
        return self.aligned.faces

    @property
    def crops(self) -> torch.Tensor:
        """E x 3 x S x S in [-1, 1]: the aligned faces to edit."""
        return self.aligned.crops


@dataclass(frozen=True, eq=False)
class FaceEdit:
    """One face of an edited photo: ``face`` (box, landmarks, quad, matrix, status, reason) and, when it was
    edited, its aligned input, mask (the matte used, 1 x S x S in [0, 1]), local edit and global edit
    (3 x S x S in [-1, 1]); None for skipped faces."""

    face: PhotoFace
    aligned: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    local_edit: torch.Tensor | None = None
    global_edit: torch.Tensor | None = None

    @property
    def box(self):
        return self.face.box

    @property
    def landmarks(self):
        return self.face.landmarks

    @property
    def quad(self):
        return self.face.quad

    @property
    def status(self) -> str:
        return self.face.status

    @property
    def reason(self) -> str:
        return self.face.reason


@dataclass(frozen=True, eq=False)
class PhotoEditResult:
    """image: the edited photo at full size; faces: one :class:`FaceEdit` per face found (left to right);
    matte: H x W float32 in [0, 1], the union of the pasted faces' warped mattes (0: the pixel is the
    input's, bit for bit); prepared: the PreparedPhoto edited (pass it again for a cheap further edit)."""

    image: Image.Image
    faces: tuple[FaceEdit, ...]
    matte: np.ndarray
    prepared: PreparedPhoto


def prepare_photo(
    editor: L2SAEEditor, photo: Photo, align: str = "auto", faces: str | int = "all", rois=(), **options
) -> PreparedPhoto:
    """Find and align the faces of ``photo`` at the editor's size and encode the chosen ones once
    (``rois``: masks read now). options: :func:`l2sae.photos.find_faces`'s (min_face_size, max_pixels, ...)."""
    aligned = find_faces(photo, editor.image_size, align=align, faces=faces, **options)
    return PreparedPhoto(aligned=aligned, encoded=editor.encode(aligned.crops, rois=rois))


def _partner(editor: L2SAEEditor, partner, align: str, name: str) -> EncodedFaces:
    """The encoded largest face of a reference/donor photo (or of a PreparedPhoto)."""
    if partner is None:
        raise ValueError(f"{name}: this mode needs {name}=PHOTO (a path, PIL image, array or PreparedPhoto)")
    if isinstance(partner, PreparedPhoto):
        if len(partner.encoded) != 1:
            raise ValueError(
                f"{name}: the prepared photo has {len(partner.encoded)} faces to edit; prepare it with faces='largest'"
            )
        return partner.encoded
    return prepare_photo(editor, partner, align=align, faces="largest").encoded


def edit_photo(
    editor: L2SAEEditor,
    photo: Photo | PreparedPhoto,
    roi: str | Sequence[str],
    mode: str = "style",
    strength: float = 1.0,
    seed: int | None = 0,
    reference: Photo | PreparedPhoto | None = None,
    donor: Photo | PreparedPhoto | None = None,
    align: str = "auto",
    faces: str | int = "all",
) -> PhotoEditResult:
    """Edit region(s) ``roi`` of every chosen face of ``photo`` and paste them back at full resolution.

    mode: "style" (strength, seed), "swap_style" (the largest face of ``reference`` gives the style) or
    "swap_structure" (the largest face of ``donor`` gives the structure); reference and donor are aligned
    like the photo. align and faces apply when ``photo`` is not prepared yet (see
    :func:`l2sae.photos.find_faces`).
    """
    mode = EditMode.parse(mode, "mode")
    prepared = photo if isinstance(photo, PreparedPhoto) else prepare_photo(editor, photo, align, faces)
    encoded = prepared.encoded
    if mode == "style":
        result = editor.edit_style(encoded, roi, strength=strength, seed=seed)
    elif mode == "swap_style":
        result = editor.swap_style(encoded, _partner(editor, reference, align, "reference"), roi)
    else:
        result = editor.swap_structure(encoded, _partner(editor, donor, align, "donor"), roi)
    pasted, matte = prepared.aligned.paste(result.global_edit, result.matte, seam=editor.matting)
    return PhotoEditResult(Image.fromarray(pasted), _face_edits(prepared, result), matte, prepared)


def _face_edits(prepared: PreparedPhoto, result: EditResult) -> tuple[FaceEdit, ...]:
    edits, index = [], 0
    for face in prepared.faces:
        if face.status != "edited":
            edits.append(FaceEdit(face))
            continue
        edits.append(
            FaceEdit(
                face,
                aligned=prepared.encoded.images[index].cpu(),
                mask=result.matte[index].cpu(),
                local_edit=result.images[index].cpu(),
                global_edit=result.global_edit[index].cpu(),
            )
        )
        index += 1
    return tuple(edits)
