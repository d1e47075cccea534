"""FFHQ alignment of faces in photos (the rule of the FFHQ dataset tool, written from its description).

Coordinates: landmarks, boxes and quads are (x, y) in pixel indices (pixel (row i, column j) is at
(j, i)), as dlib gives them. Transforms map *continuous* coordinates, where a pixel's centre lies at
its index + 0.5, so the aligned square [0, S] x [0, S] maps exactly onto the quad's area.

A quad is a parallelogram given by its corners top-left, bottom-left, bottom-right, top-right (in the
aligned square's orientation); for FFHQ it is a rotated square.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

MAX_SUPERSAMPLING = 4  # the quad is sampled at up to 4x the output side, then averaged down


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop square (4 x 2 corners: TL, BL, BR, TR) of a face's 68 dlib landmarks (68 x 2)."""
    points = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (points[48] + points[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x_axis = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # eye_to_mouth turned by 90 degrees
    x_axis /= np.hypot(*x_axis)
    x_axis *= max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))
    y_axis = np.array([-x_axis[1], x_axis[0]])
    centre = eye_avg + 0.1 * eye_to_mouth
    return np.stack(
        [centre - x_axis - y_axis, centre - x_axis + y_axis, centre + x_axis + y_axis, centre + x_axis - y_axis]
    )


def box_quad(box: tuple[float, float, float, float], scale: float = 1.95, lift: float = 0.15) -> np.ndarray:
    """An upright square around a detector box (left, top, right, bottom): ``scale`` times the box's side,
    centred ``lift`` box sides above the box's centre (close to the FFHQ framing, without rotation)."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2 - lift * side
    half = scale * side / 2
    return np.array(
        [
            [centre_x - half, centre_y - half],
            [centre_x - half, centre_y + half],
            [centre_x + half, centre_y + half],
            [centre_x + half, centre_y - half],
        ]
    )


def image_quad(height: int, width: int) -> np.ndarray:
    """The quad of a whole H x W picture (its aligned square is the picture squashed to a square)."""
    return np.array([[0, 0], [0, height], [width, height], [width, 0]], dtype=np.float64) - 0.5


def quad_side(quad: np.ndarray) -> float:
    """The longer side of a quad in pixels."""
    quad = np.asarray(quad, dtype=np.float64)
    return float(max(np.hypot(*(quad[3] - quad[0])), np.hypot(*(quad[1] - quad[0]))))


def square_to_photo(quad: np.ndarray, size: int) -> np.ndarray:
    """3 x 3 affine matrix mapping continuous (u, v) in the aligned ``size`` square to the photo's (x, y)."""
    quad = np.asarray(quad, dtype=np.float64)
    matrix = np.eye(3)
    matrix[:2, 0] = (quad[3] - quad[0]) / size
    matrix[:2, 1] = (quad[1] - quad[0]) / size
    matrix[:2, 2] = quad[0] + 0.5
    return matrix


def _padding(quad: np.ndarray, border: int, height: int, width: int, minimum: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixels by which the quad plus ``border`` leaves an H x W picture; every
    side that needs padding gets at least ``minimum``."""
    needs = (
        border - math.floor(quad[:, 0].min()),
        border - math.floor(quad[:, 1].min()),
        math.ceil(quad[:, 0].max()) + border - width,
        math.ceil(quad[:, 1].max()) + border - height,
    )
    return tuple(max(need, minimum) if need > 0 else 0 for need in needs)


def _pad_like_ffhq(pixels: np.ndarray, pads: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad H x W x 3 uint8 pixels; blur the padded area and pull it towards the median colour,
    both weighted by the distance into the pad. Returns float32."""
    left, top, right, bottom = pads
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    height, width = padded.shape[:2]
    y, x = np.ogrid[:height, :width]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_side_x = np.minimum(x / np.float32(left), (width - 1 - x) / np.float32(right))
        to_side_y = np.minimum(y / np.float32(top), (height - 1 - y) / np.float32(bottom))
    weight = np.maximum(1.0 - np.nan_to_num(to_side_x, nan=np.inf), 1.0 - np.nan_to_num(to_side_y, nan=np.inf))
    weight = np.clip(weight, -1.0, 1.0).astype(np.float32)[..., None]  # only [-1/3, 1] matters below
    blurred = Image.fromarray(padded).filter(ImageFilter.GaussianBlur(radius=0.02 * qsize))
    result = padded.astype(np.float32)
    result += (np.asarray(blurred, dtype=np.float32) - result) * np.clip(3.0 * weight + 1.0, 0.0, 1.0)
    result += (np.median(padded, axis=(0, 1)).astype(np.float32) - result) * np.clip(weight, 0.0, 1.0)
    return result


def is_identity(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.eye(3), atol=1e-9))


def align_face(photo: np.ndarray, quad: np.ndarray, size: int) -> torch.Tensor:
    """The quad of an H x W x 3 uint8 photo resampled to a ``size`` square: 3 x size x size in [-1, 1].

    As the FFHQ tool: a quad much larger than the output first shrinks the photo by an integer factor
    (box filter), the photo is cropped to the quad plus a border, reflect-padded (blurred, median-pulled)
    where the quad leaves it, and sampled bilinearly at up to 4x the output side, then averaged down.
    A quad that is exactly the photo's own square (identity transform) returns the pixels unresampled.
    """
    quad = np.asarray(quad, dtype=np.float64)
    height, width = photo.shape[:2]
    if (height, width) == (size, size) and is_identity(square_to_photo(quad, size)):
        return torch.tensor(photo).permute(2, 0, 1).float() / 127.5 - 1.0  # a copy: the photo may be read-only
    qsize = quad_side(quad)
    shrink = max(1, math.floor(qsize / (2 * size)))
    # crop to the quad plus a border (clipped to the photo, aligned to the shrink factor), then shrink
    border = max(round(0.1 * qsize), 3)
    x0 = max(math.floor(quad[:, 0].min()) - border, 0) // shrink * shrink
    y0 = max(math.floor(quad[:, 1].min()) - border, 0) // shrink * shrink
    x1 = min(math.ceil(quad[:, 0].max()) + border + 1, width)
    y1 = min(math.ceil(quad[:, 1].max()) + border + 1, height)
    x1, y1 = max(x1, x0 + shrink), max(y1, y0 + shrink)  # a quad entirely outside still keeps one pixel
    x0, y0 = min(x0, (width - 1) // shrink * shrink), min(y0, (height - 1) // shrink * shrink)
    region = photo[y0:y1, x0:x1]
    if shrink > 1:
        region = np.asarray(Image.fromarray(np.ascontiguousarray(region)).reduce(shrink))
    # the quad in the region's continuous coordinates
    corners = (quad + 0.5 - [x0, y0]) / shrink
    qsize /= shrink
    border = max(round(0.1 * qsize), 3)
    pads = _padding(corners - 0.5, border, *region.shape[:2], minimum=round(0.3 * qsize))
    if any(pads):
        pixels = _pad_like_ffhq(np.ascontiguousarray(region), pads, qsize)
        corners = corners + [pads[0], pads[1]]
    else:
        pixels = region.astype(np.float32)
    source = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]
    supersampling = int(min(max(math.ceil(qsize / size), 1), MAX_SUPERSAMPLING))
    side = size * supersampling
    grid = sampling_grid(square_to_photo(corners - 0.5, side), (side, side), source.shape[-2:])
    sampled = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if supersampling > 1:
        sampled = F.avg_pool2d(sampled, supersampling)
    return (sampled[0] / 127.5 - 1.0).clamp(-1.0, 1.0)


def sampling_grid(matrix: np.ndarray, output_size: tuple[int, int], source_size: tuple[int, int]) -> torch.Tensor:
    """1 x h x w x 2 ``grid_sample`` coordinates (align_corners=False) of an output of ``output_size`` (h, w)
    whose continuous coordinates map to the source's (of ``source_size`` (H, W)) by the 3 x 3 ``matrix``."""
    height, width = output_size
    source_height, source_width = source_size
    from_normalised = np.array([[width / 2, 0, width / 2], [0, height / 2, height / 2], [0, 0, 1]])
    to_normalised = np.array([[2 / source_width, 0, -1], [0, 2 / source_height, -1], [0, 0, 1]])
    theta = torch.from_numpy((to_normalised @ matrix @ from_normalised)[:2]).float()[None]
    return F.affine_grid(theta, [1, 1, height, width], align_corners=False)
