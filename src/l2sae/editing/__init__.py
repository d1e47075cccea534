"""Region editing: the L2SAE editor (Algorithms 1 and 2); ``l2sae.editing.run`` is ``edit.py``'s work.

Plain Python objects; no Lightning or Hydra is needed to use the editor::

    from l2sae.regions import ROI_NAMES
    editor = L2SAEEditor.from_checkpoints("logs/latest/smn.pt", "logs/latest/smpn.pt")
    faces = editor.encode(images, rois=ROI_NAMES)         # each image encoded once per network
    result = editor.edit_style(faces, "hair", strength=1.5, seed=3)
    result.images, result.matte, result.global_edit
    photo = editor.edit_photo("photo.jpg", "hair", strength=1.5)   # every face found, aligned, pasted back
    photo.image.save("edited.png")
"""

from l2sae.editing.editor import EditResult, EncodedFaces, L2SAEEditor
from l2sae.editing.matting import AlphaMatting
from l2sae.editing.photo import FaceEdit, PhotoEditResult, PreparedPhoto

__all__ = ["AlphaMatting", "EditResult", "EncodedFaces", "FaceEdit", "L2SAEEditor", "PhotoEditResult", "PreparedPhoto"]
