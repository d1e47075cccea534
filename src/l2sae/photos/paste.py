"""Paste edited face crops back into the full-resolution photo with each face's inverse transform."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from l2sae.photos.alignment import quad_side, sampling_grid


def edge_fade(size: int, width: int, sides: tuple[bool, bool, bool, bool] = (True,) * 4) -> torch.Tensor:
    """size x size weights rising linearly from 0 on the square's border pixels to 1 at ``width`` px inside,
    along the ``sides`` (top, left, bottom, right) that are True (1 along the others), so a matte that touches
    the crop's border still ends softly in the photo, and nothing of it reaches past the square when a large
    face is warped (bilinear sampling spreads a border pixel half a crop pixel outwards)."""
    ramp = (torch.arange(size, dtype=torch.float32) / width).clamp(max=1.0)
    top, left, bottom, right = (ramp if fade else torch.ones(size) for fade in sides)
    rows, columns = torch.minimum(top, bottom.flip(0)), torch.minimum(left, right.flip(0))
    return torch.minimum(rows[:, None], columns[None, :])


def _sides_inside(quad: np.ndarray, height: int, width: int) -> tuple[bool, bool, bool, bool]:
    """For the quad's top, left, bottom and right sides: whether it lies (partly) inside an H x W photo; a side
    on or beyond the photo's border (the whole picture's square, say) is the photo's own edge."""
    corners = np.asarray(quad, dtype=np.float64) + 0.5  # continuous coordinates: the photo is [0, W] x [0, H]
    tolerance = 1e-6
    low, high = corners <= tolerance, corners >= np.array([width, height]) - tolerance  # 4 x 2 (x, y)
    sides = ((0, 3), (0, 1), (1, 2), (3, 2))  # corners TL, BL, BR, TR: top, left, bottom, right
    return tuple(not (low[[a, b]].all(axis=0).any() or high[[a, b]].all(axis=0).any()) for a, b in sides)


class SeamSmoothing(Protocol):
    """How :func:`paste_faces` smooths each face's seam (:class:`l2sae.editing.matting.AlphaMatting` is one)."""

    seam_strength: float

    def seam_kernel_at(self, scale: float) -> int:
        """The odd Gaussian size for a matte warped ``scale`` times larger."""

    def smooth(self, images: torch.Tensor, matte: torch.Tensor, kernel_size: int) -> torch.Tensor:
        """images (1 x 3 x h x w) blended with their blur where ``matte`` (1 x 1 x h x w) is strictly in (0, 1)."""


def _photo_box(quad: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the photo pixels the quad covers (clipped), or None when it misses the photo."""
    x0, y0 = max(math.floor(quad[:, 0].min()), 0), max(math.floor(quad[:, 1].min()), 0)
    x1, y1 = min(math.ceil(quad[:, 0].max()) + 1, width), min(math.ceil(quad[:, 1].max()) + 1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _smooth_in_photo(
    photo: torch.Tensor,
    box: tuple[int, int, int, int],
    blended: torch.Tensor,
    matte: torch.Tensor,
    seam: SeamSmoothing,
    kernel: int,
) -> torch.Tensor:
    """``blended`` (3 x h x w: the photo's ``box`` after a face's paste) smoothed by ``seam`` along ``matte``
    (h x w), the blur reading the photo (H x W x 3 uint8) up to ``kernel // 2`` px around the box."""
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = box
    reach = kernel // 2
    left, top = max(x0 - reach, 0), max(y0 - reach, 0)
    right, bottom = min(x1 + reach, width), min(y1 + reach, height)
    window = photo[top:bottom, left:right].permute(2, 0, 1).float()
    inside = (slice(None), slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    window[inside] = blended
    matte = F.pad(matte, (x0 - left, right - x1, y0 - top, bottom - y1))
    kernel = min(kernel, 2 * min(window.shape[-2:]) - 1)  # reflect padding needs half the kernel below the side
    return seam.smooth(window[None], matte[None, None], kernel)[0][inside]


def paste_faces(
    photo: np.ndarray,
    quads: Sequence[np.ndarray],
    matrices: Sequence[np.ndarray],
    images: torch.Tensor,
    mattes: torch.Tensor,
    fade_width: int | None = None,
    seam: SeamSmoothing | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp each face's image into the photo inside its matte; the larger faces are pasted last.

    photo: H x W x 3 uint8; quads: 4 x 2 corners per face; matrices: each face's 3 x 3 map from its aligned
    square to the photo (:func:`l2sae.photos.alignment.square_to_photo`); images: N x 3 x S x S in [-1, 1]
    (what goes into the photo); mattes: N x 1 x S x S in [0, 1]. Each matte is faded towards the square's
    sides that lie inside the photo over ``fade_width`` px (default S/16; none where the square reaches the
    photo's border, so a whole picture is edited to its edge), warped with bilinear sampling (images shrinking by more
    than 2x are first reduced with antialiasing) and blended: ``photo + matte * (image - photo)``. With
    ``seam`` (and its seam_strength > 0) the blend is then smoothed along the warped matte's edge, as the
    editor does at the crop's resolution, with its kernel scaled by the face's size in the photo; only the
    face's window (plus the kernel's reach) is computed. Pixels where every warped matte is 0 are returned
    bit-identical.
    Returns (the pasted photo, H x W x 3 uint8; the union of the warped mattes, H x W float32 in [0, 1]).
    """
    height, width = photo.shape[:2]
    size = images.shape[-1]
    fade_width = fade_width or max(2, size // 16)
    result = torch.from_numpy(np.array(photo, dtype=np.uint8, copy=True))
    union = torch.zeros(height, width)
    smoothing = seam is not None and seam.seam_strength > 0
    for index in sorted(range(len(quads)), key=lambda i: quad_side(quads[i])):
        box = _photo_box(np.asarray(quads[index]), height, width)
        if box is None:
            continue
        source = torch.cat([images[index].float().cpu(), mattes[index].float().cpu()], dim=0)[None]
        side = quad_side(quads[index])
        if side < size / 2:
            reduced = max(2, math.ceil(side))
            source = F.interpolate(source, size=(reduced, reduced), mode="bilinear", antialias=True)
        n = source.shape[-1]  # the fade after any reduction: its border pixels stay exactly 0
        source[:, 3:] *= edge_fade(n, max(1, round(fade_width * n / size)), _sides_inside(quads[index], height, width))
        x0, y0, x1, y1 = box
        photo_to_square = np.linalg.inv(np.asarray(matrices[index], dtype=np.float64))
        box_to_photo = np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]])
        grid = sampling_grid(photo_to_square @ box_to_photo, (y1 - y0, x1 - x0), (size, size))
        # border padding: the photo pixels just past a square that is the whole picture keep its edge's values
        warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        matte = warped[3].clamp(0.0, 1.0)
        region = result[y0:y1, x0:x1].permute(2, 0, 1).float()
        pasted = (warped[:3] + 1.0) * 127.5
        blended = region + matte * (pasted - region)
        if smoothing:
            blended = _smooth_in_photo(result, box, blended, matte, seam, seam.seam_kernel_at(side / size))
        blended = blended.round().clamp(0, 255)
        region = torch.where(matte > 0, blended, region).to(torch.uint8)
        result[y0:y1, x0:x1] = region.permute(1, 2, 0)
        union[y0:y1, x0:x1] = torch.maximum(union[y0:y1, x0:x1], matte)
    return result.numpy(), union.numpy()
