"""Find, select and align the faces of a photo: what :meth:`L2SAEEditor.prepare_photo` builds on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from l2sae.photos.alignment import align_face, box_quad, ffhq_quad, image_quad, quad_side, square_to_photo
from l2sae.photos.detection import DetectedFace, detect_faces, smallest_detectable_face
from l2sae.photos.paste import SeamSmoothing, paste_faces
from l2sae.photos.reading import PHOTO_MAX_PIXELS, Photo, PhotoError, load_photo
from l2sae.utils.choices import Choice


class Align(Choice):
    """How a photo's faces are framed (the ``align`` setting; see :func:`find_faces`)."""

    auto = "auto"
    ffhq = "ffhq"
    crop = "crop"
    none = "none"


FACE_CHOICES = "all, largest or a face number (0 = leftmost)"
EDITED, SKIPPED = "edited", "skipped"


class NoFaceError(PhotoError):
    """No face to edit in a photo (none found, or all too small); the message names the photo."""


class FaceNotFoundError(NoFaceError):
    """The detector found no face at all in a photo."""


@dataclass(frozen=True, eq=False)
class PhotoFace:
    """One face of a photo. box: (left, top, right, bottom) px and score: the detector's (None when the
    whole picture is used); landmarks: 68 x 2 or None; quad: 4 x 2 corners (TL, BL, BR, TR) of its aligned
    square in the photo; matrix: 3 x 3 map from that square (continuous coordinates) to the photo's;
    status: "edited" or "skipped", and the reason."""

    box: tuple[float, float, float, float] | None
    score: float | None
    landmarks: np.ndarray | None
    quad: np.ndarray
    matrix: np.ndarray
    status: str
    reason: str

    @property
    def side(self) -> float:
        """The aligned square's side in photo pixels."""
        return quad_side(self.quad)

    def to_dict(self) -> dict:
        """JSON-ready description (the sidecar's per-face entry)."""

        def rounded(values):
            return None if values is None else np.round(np.asarray(values, dtype=np.float64), 2).tolist()

        return {
            "box": rounded(self.box),
            "score": None if self.score is None else round(self.score, 3),
            "landmarks": rounded(self.landmarks),
            "quad": rounded(self.quad),
            "side_px": round(self.side, 1),
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True, eq=False)
class AlignedPhoto:
    """A photo and its faces. image: H x W x 3 uint8 at full resolution; name: for messages; size: the
    aligned squares' side; align: the mode used ("ffhq", "crop", "none" or "as_is" for a picture that is
    already an aligned face); faces: every face found, left to right; crops: E x 3 x size x size in [-1, 1],
    the faces whose status is "edited", in order."""

    image: np.ndarray
    name: str
    size: int
    align: str
    faces: tuple[PhotoFace, ...]
    crops: torch.Tensor

    @property
    def edited_faces(self) -> list[PhotoFace]:
        return [face for face in self.faces if face.status == EDITED]

    def paste(
        self, images: torch.Tensor, mattes: torch.Tensor, seam: SeamSmoothing | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The photo with ``images`` (E x 3 x S x S, one per edited face) pasted inside ``mattes`` (E x 1 x S x S),
        its seams smoothed by ``seam``; see :func:`l2sae.photos.paste.paste_faces`. Returns (H x W x 3 uint8,
        H x W float32 matte)."""
        faces = self.edited_faces
        return paste_faces(self.image, [f.quad for f in faces], [f.matrix for f in faces], images, mattes, seam=seam)


def frames_like_ffhq(quad: np.ndarray, size: int, tolerance: float = 0.12) -> bool:
    """Whether a face's FFHQ quad nearly fills a ``size`` square picture (centre, side and roll within
    ``tolerance`` of the side, resp. ~7 degrees)."""
    quad = np.asarray(quad, dtype=np.float64)
    centre = quad.mean(axis=0) + 0.5
    top = quad[3] - quad[0]
    return bool(
        np.all(np.abs(centre - size / 2) <= tolerance * size)
        and abs(quad_side(quad) / size - 1.0) <= tolerance
        and abs(np.arctan2(top[1], top[0])) <= tolerance
    )


def check_face_choice(faces: str | int) -> str | int:
    """``faces`` as "all", "largest" or an int (digit strings too); a ValueError naming the key otherwise."""
    if isinstance(faces, str) and faces.isdigit():
        faces = int(faces)
    if faces in ("all", "largest") or (isinstance(faces, int) and not isinstance(faces, bool) and faces >= 0):
        return faces
    raise ValueError(f"faces: expected {FACE_CHOICES}, got {faces!r}")


def _face(detected: DetectedFace | None, quad: np.ndarray, size: int, status: str = EDITED, reason: str = ""):
    return PhotoFace(
        box=None if detected is None else detected.box,
        score=None if detected is None else detected.score,
        landmarks=None if detected is None else detected.landmarks,
        quad=quad,
        matrix=square_to_photo(quad, size),
        status=status,
        reason=reason,
    )


def _select(faces: list[PhotoFace], choice: str | int, min_face_size: float, name: str) -> list[PhotoFace]:
    """Mark faces not chosen or too small as skipped; fail when none is left to edit."""
    largest = max(range(len(faces)), key=lambda i: faces[i].side)
    if isinstance(choice, int) and choice >= len(faces):
        raise NoFaceError(f"{name}: faces={choice} but {len(faces)} face(s) were found (numbered 0.. from the left)")
    selected = []
    for index, face in enumerate(faces):
        if (choice == "largest" and index != largest) or (isinstance(choice, int) and index != choice):
            face = _replace(face, SKIPPED, f"not chosen (faces={choice})")
        elif face.side < min_face_size:
            face = _replace(
                face,
                SKIPPED,
                f"too small: {face.side:.0f} px across (its aligned square), below {min_face_size:.0f} px",
            )
        selected.append(face)
    if not any(face.status == EDITED for face in selected):
        reasons = "; ".join(f"face {i}: {face.reason}" for i, face in enumerate(selected) if face.status == SKIPPED)
        raise NoFaceError(f"{name}: no face to edit ({reasons}); use a larger photo of the face or min_face_size")
    return selected


def _replace(face: PhotoFace, status: str, reason: str) -> PhotoFace:
    return PhotoFace(face.box, face.score, face.landmarks, face.quad, face.matrix, status, reason)


def find_faces(
    photo: Photo,
    size: int,
    *,
    align: str = "auto",
    faces: str | int = "all",
    min_face_size: float | None = None,
    max_pixels: int | None = PHOTO_MAX_PIXELS,
    **detection,
) -> AlignedPhoto:
    """Detect, select and align the faces of ``photo`` (a path, PIL image or H x W (x 3/4) array).

    align: "ffhq" (the FFHQ rule from the 68 landmarks), "crop" (an upright square around the detector's
    box), "none" (the whole picture squashed to the square, no detection) or "auto" (a ``size`` square
    picture with no face found, or whose face already fills it like FFHQ, is used as it is, unresampled;
    anything else is aligned with "ffhq"). faces: "all", "largest" or a face number (0 = leftmost).
    min_face_size: faces whose aligned square is smaller (photo px) are skipped (default: size / 2).
    max_pixels: photo files with more pixels are refused before decoding (None: no cap).
    detection: keyword arguments of :func:`l2sae.photos.detection.detect_faces`.
    Raises NoFaceError (naming the photo) when no face is left to edit.
    """
    align = Align.parse(align, "align")
    choice = check_face_choice(faces)
    image, name = load_photo(photo, max_pixels)
    height, width = image.shape[:2]
    min_face_size = size / 2 if min_face_size is None else float(min_face_size)
    if align == "none":
        found = [_face(None, image_quad(height, width), size, reason="align=none: the whole picture")]
        mode = "none"
    else:
        detected = detect_faces(image, **detection)
        mode = "crop" if align == "crop" else "ffhq"
        if align == "auto" and (height, width) == (size, size):
            largest = max(detected, key=lambda face: quad_side(ffhq_quad(face.landmarks)), default=None)
            if largest is None or frames_like_ffhq(ffhq_quad(largest.landmarks), size):
                reason = "already aligned" if largest else "no face found; a picture of the model's size is taken as is"
                return _aligned(
                    image, name, size, "as_is", [_face(largest, image_quad(size, size), size, reason=reason)]
                )
        if not detected:
            raise FaceNotFoundError(
                f"{name}: no face found (dlib's frontal face detector); use a photo with a frontal face at least "
                f"~{smallest_detectable_face(height, width, **detection)} px wide (detection_side, upsample: "
                "smaller), or align=none to edit the whole picture"
            )
        quads = [box_quad(face.box) if mode == "crop" else ffhq_quad(face.landmarks) for face in detected]
        found = [_face(face, quad, size) for face, quad in zip(detected, quads)]
    return _aligned(image, name, size, mode, _select(found, choice, min_face_size, name))


def _aligned(image: np.ndarray, name: str, size: int, mode: str, faces: list[PhotoFace]) -> AlignedPhoto:
    crops = torch.stack([align_face(image, face.quad, size) for face in faces if face.status == EDITED])
    return AlignedPhoto(image=image, name=name, size=size, align=mode, faces=tuple(faces), crops=crops)
