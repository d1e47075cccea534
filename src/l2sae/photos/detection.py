"""Faces in a photo: dlib's HOG detector on a downscaled copy, 68 landmarks on the full-resolution photo."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from l2sae.photos.dlib_models import face_detector, landmark_predictor

DETECTION_SIDE = 1024  # photos with a longer side are downscaled to it for detection
LANDMARK_FACE_SIDE = 200  # smaller faces are upscaled to this box side for the landmarks (dlib gives integer points)
DETECTOR_WINDOW = 80  # px of the detection copy: dlib's HOG detector finds faces about this wide and wider
MIN_SCORE = 0.3  # detector scores below this are dropped (dlib's own threshold 0 lets some hands and shadows in)


@dataclass(frozen=True)
class DetectedFace:
    """box: (left, top, right, bottom) in full-resolution pixels; score: the detector's confidence;
    landmarks: 68 x 2 (x, y) in the iBUG 300-W order."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray


def _detection_copy(photo: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The photo downscaled so that its longer side is at most ``max_side``, and the scale used (<= 1)."""
    height, width = photo.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return photo, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR, reducing_gap=2.0)), scale


def smallest_detectable_face(
    height: int, width: int, detection_side: int = DETECTION_SIDE, upsample: int | None = None, **_
) -> int:
    """The narrowest face (photo px) :func:`detect_faces` finds in an H x W photo with these settings: dlib's
    detector window is 80 px of the detection copy, halved by each doubling (None: 1, its retry)."""
    scale = min(1.0, detection_side / max(height, width))
    return round(DETECTOR_WINDOW / 2 ** (1 if upsample is None else upsample) / scale)


def detect_faces(
    photo: np.ndarray,
    *,
    detection_side: int = DETECTION_SIDE,
    upsample: int | None = None,
    min_score: float = MIN_SCORE,
) -> list[DetectedFace]:
    """Every face in an H x W x 3 uint8 photo, ordered left to right.

    Detection runs on a copy whose longer side is at most ``detection_side`` (a 24-megapixel photo needs
    no more memory than a 1-megapixel one) with ``upsample`` doublings of that copy (dlib's HOG detector finds
    faces from ~80 px at 0, ~40 px at 1; None: 0, and 1 when 0 finds nothing, so a photo with large faces
    and tiny ones may need upsample=1 for the tiny ones). The 68 landmarks are found on the full-resolution
    photo.
    """
    small, scale = _detection_copy(photo, detection_side)
    boxes, scores, _ = face_detector().run(small, upsample or 0, 0.0)
    if upsample is None and not any(score >= min_score for score in scores):
        boxes, scores, _ = face_detector().run(small, 1, 0.0)
    faces = []
    for rect, score in zip(boxes, scores):
        if score >= min_score:
            box = tuple((value + 0.5) / scale - 0.5 for value in (rect.left(), rect.top(), rect.right(), rect.bottom()))
            faces.append(DetectedFace(box=box, score=float(score), landmarks=face_landmarks(photo, box)))
    return sorted(faces, key=lambda face: face.box[0] + face.box[2])


def face_landmarks(photo: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """68 x 2 landmarks of the face in ``box`` (left, top, right, bottom) of an H x W x 3 uint8 photo.

    dlib returns whole pixels, so a face smaller than ``LANDMARK_FACE_SIDE`` is read from an upscaled copy of
    its surroundings (bicubic): on the astronaut at 0.6x this made the FFHQ crop of a rotated copy agree
    with the original's at ~32 dB instead of ~23 dB.
    """
    import dlib

    left, top, right, bottom = box
    side = max(right - left, bottom - top, 1.0)
    zoom = max(1.0, LANDMARK_FACE_SIDE / side)
    x0, y0 = max(0, math.floor(left - side / 2)), max(0, math.floor(top - side / 2))
    x1, y1 = min(photo.shape[1], math.ceil(right + side / 2) + 1), min(photo.shape[0], math.ceil(bottom + side / 2) + 1)
    region = np.ascontiguousarray(photo[y0:y1, x0:x1])
    if zoom > 1.0:
        size = (round((x1 - x0) * zoom), round((y1 - y0) * zoom))
        region = np.asarray(Image.fromarray(region).resize(size, Image.BICUBIC))
    zoom_x, zoom_y = region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0)

    def to_region(x: float, y: float) -> tuple[int, int]:
        return round((x - x0 + 0.5) * zoom_x - 0.5), round((y - y0 + 0.5) * zoom_y - 0.5)

    rect = dlib.rectangle(*to_region(left, top), *to_region(right, bottom))
    points = np.array([(point.x, point.y) for point in landmark_predictor()(region, rect).parts()], dtype=np.float64)
    return (points + 0.5) / [zoom_x, zoom_y] - 0.5 + [x0, y0]
