"""dlib's face models, loaded once per process from the ``face-recognition-models`` package.

The package's ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so the model files
are found through the import system without importing it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

MODELS_PACKAGE = "face_recognition_models"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
FACE_DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"


class FaceModelsMissingError(RuntimeError):
    """dlib or its model files are not installed; the message says what to install."""


def model_path(filename: str) -> Path:
    """Path of one of dlib's model files shipped by ``face-recognition-models``."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissingError(
            f"{filename}: the package face-recognition-models (import name {MODELS_PACKAGE}) is not installed; "
            "run `pip install face-recognition-models` (it ships dlib's face models)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / filename
    if not path.is_file():
        raise FaceModelsMissingError(f"{path}: missing from face-recognition-models; reinstall that package")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as error:
        raise FaceModelsMissingError("dlib is not installed; run `pip install dlib-bin` (a prebuilt dlib)") from error
    return dlib


@lru_cache(maxsize=1)
def face_detector():
    """dlib's HOG frontal face detector (``detector.run(rgb_uint8, upsample, threshold)``)."""
    return _dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def landmark_predictor():
    """dlib's 68-point shape predictor (iBUG 300-W scheme; its licence excludes commercial use)."""
    return _dlib().shape_predictor(str(model_path(LANDMARKS_68)))


@lru_cache(maxsize=1)
def face_descriptor_model():
    """dlib's 128-d face descriptor (ResNet; the same person when descriptors are closer than 0.6)."""
    return _dlib().face_recognition_model_v1(str(model_path(FACE_DESCRIPTOR)))
