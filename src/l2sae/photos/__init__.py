"""Faces in photos: dlib detection and 68 landmarks, FFHQ alignment and its inverse, paste-back.

Plain Python (no Hydra, Lightning or l2sae.editing)::

    aligned = find_faces("photo.jpg", size=256)            # every face, aligned like FFHQ
    aligned.crops                                           # E x 3 x 256 x 256 in [-1, 1]
    photo, matte = aligned.paste(edited_crops, mattes)      # back at full resolution

:meth:`l2sae.editing.L2SAEEditor.edit_photo` composes this with the editor.
"""

from l2sae.photos.alignment import align_face, box_quad, ffhq_quad, square_to_photo
from l2sae.photos.detection import DetectedFace, detect_faces
from l2sae.photos.dlib_models import FaceModelsMissingError, face_descriptor_model, face_detector, landmark_predictor
from l2sae.photos.drawing import draw_faces
from l2sae.photos.faces import (
    Align,
    AlignedPhoto,
    FaceNotFoundError,
    NoFaceError,
    PhotoFace,
    check_face_choice,
    find_faces,
    frames_like_ffhq,
)
from l2sae.photos.paste import paste_faces
from l2sae.photos.reading import PhotoError, load_photo

__all__ = [
    "Align",
    "AlignedPhoto",
    "FaceNotFoundError",
    "DetectedFace",
    "FaceModelsMissingError",
    "NoFaceError",
    "PhotoError",
    "PhotoFace",
    "align_face",
    "box_quad",
    "check_face_choice",
    "detect_faces",
    "draw_faces",
    "face_descriptor_model",
    "face_detector",
    "ffhq_quad",
    "find_faces",
    "frames_like_ffhq",
    "landmark_predictor",
    "load_photo",
    "paste_faces",
    "square_to_photo",
]
