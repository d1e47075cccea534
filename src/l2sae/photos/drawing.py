"""Pictures of what the photo pipeline found: landmarks and alignment squares drawn on the photo."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageDraw

from l2sae.photos.faces import EDITED, PhotoFace


def draw_faces(photo: np.ndarray | Image.Image, faces: Iterable[PhotoFace], width: int | None = None) -> Image.Image:
    """A copy of ``photo`` with each face's 68 landmarks (dots) and alignment quad (its top edge thicker) drawn;
    edited faces in green, skipped ones in red. ``width``: line width in px (default: ~1/250 of the longer side)."""
    image = Image.fromarray(np.asarray(photo)).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = width or max(1, round(max(image.size) / 250))
    for face in faces:
        colour = (40, 220, 90) if face.status == EDITED else (230, 50, 50)
        corners = [tuple(point + 0.5) for point in np.asarray(face.quad)]
        draw.line([*corners, corners[0]], fill=colour, width=width)
        draw.line([corners[3], corners[0]], fill=colour, width=3 * width)  # the top edge
        for x, y in [] if face.landmarks is None else face.landmarks + 0.5:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=(255, 230, 40))
    return image
