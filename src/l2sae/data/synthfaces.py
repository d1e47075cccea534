"""Synthetic frontal faces with exact part masks, written in the CelebAMask-HQ layout.

Each face is painted back to front from soft-edged shapes (ellipses, trapezoids, curved bands)
on a normalised grid (u to the right, v downwards, both in [-1, 1]): background, clothes, hair
behind the head, neck, ears, face, hair cap, brows, eyes, nose, lips and mouth, then soft
directional lighting. A shape owns a pixel (its part label) where its coverage exceeds 1/2, so
the masks are exactly the shapes seen. Every part that can be a region is kept clearly brighter
than black (channel mean >= ``MIN_PART_BRIGHTNESS``), because ROI masks are read off decodes on
a black background. Image i depends only on (seed, i, size).

    python -m l2sae.data.synthfaces --out data/synthfaces --n 800 --size 128 --seed 0
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from l2sae.data.cache import DEFAULT_CACHE_FOLDER
from l2sae.data.layout import IMAGE_DIR, MAPPING_FILE, MASK_DIR, PARTITION_FILE, image_path, mask_path
from l2sae.regions import CELEBAMASK_PARTS
from l2sae.utils.files import atomic_write_json, atomic_write_text, file_lock, temporary_sibling

GENERATOR_VERSION = 2  # bump when the drawing changes, so ensure_synthfaces redraws old sets
MANIFEST_FILE = "synthfaces.json"
MIN_PART_BRIGHTNESS = 0.2  # channel mean in [0, 1] of every pixel that belongs to a part
PARTITION_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test of the optional list_eval_partition.txt
LABEL = {part: label for label, part in enumerate(CELEBAMASK_PARTS, start=1)}

SKIN_TONES = np.array(
    [[0.97, 0.84, 0.74], [0.89, 0.70, 0.56], [0.76, 0.55, 0.40], [0.56, 0.38, 0.26], [0.42, 0.28, 0.20]]
)
HAIR_COLOURS = np.array(
    [
        [0.88, 0.76, 0.48],
        [0.72, 0.55, 0.33],
        [0.52, 0.35, 0.21],
        [0.36, 0.25, 0.18],
        [0.28, 0.23, 0.22],
        [0.66, 0.30, 0.14],
        [0.70, 0.70, 0.70],
        [0.92, 0.90, 0.86],
    ]
)
IRIS_COLOURS = np.array(
    [[0.30, 0.50, 0.78], [0.34, 0.56, 0.36], [0.52, 0.34, 0.20], [0.56, 0.46, 0.26], [0.56, 0.61, 0.66]]
)
LIP_COLOURS = np.array(
    [
        [0.80, 0.38, 0.42],
        [0.70, 0.25, 0.30],
        [0.78, 0.50, 0.48],
        [0.58, 0.32, 0.30],
        [0.86, 0.30, 0.36],
        [0.62, 0.16, 0.30],
        [0.92, 0.55, 0.62],
        [0.92, 0.45, 0.38],
    ]
)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates u (right), v (down) in [-1, 1], each size x size float32."""
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    return np.meshgrid(axis, axis, indexing="xy")


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    """Approximate signed distance (negative inside) to an axis-aligned ellipse."""
    return (np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2) - 1.0) * min(ru, rv)


def ellipse_box(cu: float, cv: float, ru: float, rv: float) -> tuple[float, float, float, float]:
    return cu - ru, cu + ru, cv - rv, cv + rv


class _Canvas:
    """An RGB image and its part-label map, painted back to front."""

    def __init__(self, background: np.ndarray, zoom: float):
        """``background``: size x size x 3 in [0, 1]; shapes are drawn on the grid magnified ``zoom`` times."""
        self.size = background.shape[0]
        self.image = background.astype(np.float32)
        self.labels = np.zeros((self.size, self.size), dtype=np.uint8)
        self.covered: np.ndarray | None = None  # on a placed canvas: the pixels its parts were given
        self.touched: np.ndarray | None = None  # on a placed canvas: the pixels its paints changed at all
        self._magnify(zoom)

    def _magnify(self, zoom: float) -> None:
        self.zoom = zoom
        self.u, self.v = (axis / zoom for axis in _grid(self.size))
        self.pixel = 2.0 / self.size / zoom

    def placed(self, zoom: float) -> _Canvas:
        """A canvas painting into this one's image and labels with shapes magnified ``zoom`` times (another
        face's placement); its ``covered`` collects the pixels whose label its paints set, ``touched`` those
        they blend into at all."""
        canvas = copy.copy(self)  # shares image and labels
        canvas._magnify(zoom)
        canvas.covered, canvas.touched = (np.zeros((self.size, self.size), dtype=bool) for _ in range(2))
        return canvas

    def window(self, box: tuple[float, float, float, float]) -> tuple[slice, slice]:
        """Pixel rows and columns of ``box`` = (u_min, u_max, v_min, v_max), with a 2-pixel margin."""

        def pixels(low: float, high: float) -> slice:
            first = int(np.floor((low * self.zoom + 1) / 2 * self.size)) - 2
            last = int(np.ceil((high * self.zoom + 1) / 2 * self.size)) + 2
            return slice(min(max(first, 0), self.size), min(max(last, 0), self.size))

        u_min, u_max, v_min, v_max = box
        return pixels(v_min, v_max), pixels(u_min, u_max)

    def paint(self, box, distance, colour, part: str | None = None) -> None:
        """Lay ``colour`` over the shape with signed distance ``distance(u, v)`` (evaluated inside ``box``).

        ``colour`` is an RGB triple or a size x size x 3 field; the shape's pixels with coverage
        above 1/2 get ``part``'s label.
        """
        window = self.window(box)
        alpha = np.clip(0.5 - distance(self.u[window], self.v[window]) / self.pixel, 0.0, 1.0)
        colour = np.asarray(colour, dtype=np.float32)
        colour = colour[window] if colour.ndim == 3 else colour
        pixels = self.image[window]
        pixels += alpha[..., None] * (colour - pixels)
        if self.touched is not None:
            self.touched[window] |= alpha > 0
        if part is not None:
            self.labels[window][alpha > 0.5] = LABEL[part]
            if self.covered is not None:
                self.covered[window][alpha > 0.5] = True


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly interpolated random field (size x size, roughly N(0, 1) at the cell corners)."""
    corners = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    position = np.linspace(0.0, cells, size, dtype=np.float32)
    low = np.minimum(position.astype(np.int64), cells - 1)
    frac = position - low
    rows = corners[low] * (1 - frac)[:, None] + corners[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac)[None, :] + rows[:, low + 1] * frac[None, :]


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float, unlike: np.ndarray | None = None) -> np.ndarray:
    """A palette colour blended with another and jittered; with ``unlike``, only from entries far from it."""
    if unlike is not None:
        distance = np.linalg.norm(palette - unlike, axis=1)
        palette = palette[distance >= min(0.3, distance.max())]
    first, second = rng.integers(len(palette), size=2)
    colour = palette[first] + rng.uniform(0, 0.3) * (palette[second] - palette[first])
    return np.clip(colour + rng.uniform(-jitter, jitter, 3), 0.0, 1.0).astype(np.float32)


Draws = Callable[[str], np.random.Generator]
"""Where a face's random draws come from, by kind: ``"look"`` (colours, textures, light) or a part group's
shape (``"face"``: zoom and face layout, ``"clothes"``, ``"head"``: neck and ears, then ``SHAPE_GROUPS``).
A plain drawing takes every kind from one generator, in drawing order; :mod:`l2sae.data.synthswap`
records and replays the kinds separately to give one face another's part shapes."""

SHAPE_GROUPS = ("hair", "brows", "eyes", "nose", "lips_mouth")  # part groups a structure swap can take


@dataclass(frozen=True)
class _Face:
    """Where the face and its features sit (drawing units: u right, v down) and its skin and hair colours."""

    u: float
    v: float
    ru: float
    rv_top: float
    rv_chin: float
    eye_v: float
    eye_gap: float
    eye_ru: float
    eye_rv: float
    nose_top: float
    nose_tip: float
    mouth_v: float
    skin: np.ndarray
    hair: np.ndarray

    @classmethod
    def random(cls, shape: np.random.Generator, look: np.random.Generator) -> _Face:
        uniform = shape.uniform
        u, v = uniform(-0.03, 0.03), uniform(0.0, 0.1)
        ru, rv_top, rv_chin = uniform(0.34, 0.44), uniform(0.46, 0.54), uniform(0.5, 0.6)
        eye_v, eye_gap = v + uniform(-0.06, 0.0), uniform(0.15, 0.19)
        eye_ru, eye_rv = uniform(0.085, 0.11), uniform(0.048, 0.062)
        nose_top, nose_tip = eye_v + 0.03, v + uniform(0.17, 0.24)
        mouth_v = nose_tip + uniform(0.12, 0.15)
        skin = _pick(look, SKIN_TONES, 0.04)
        hair = _pick(look, HAIR_COLOURS, 0.05, unlike=skin)
        return cls(u, v, ru, rv_top, rv_chin, eye_v, eye_gap, eye_ru, eye_rv, nose_top, nose_tip, mouth_v, skin, hair)


@dataclass(frozen=True)
class Drawing:
    """A drawn face: image (size x size x 3 float32 in [0, 1]), part labels (size x size uint8), where its
    shapes sit (``zoom``, ``face``: the drawing's magnification and layout), and with a :class:`Placement`
    the pixels whose label the placed group's parts set (``placed``: size x size bool, before later parts
    were painted over them) and those its paints blended into at all (``touched``, a superset)."""

    image: np.ndarray
    labels: np.ndarray
    zoom: float
    face: _Face
    placed: np.ndarray | None = None
    touched: np.ndarray | None = None


@dataclass(frozen=True)
class Placement:
    """Part ``group`` is painted with another face's layout (``zoom``, ``face``) instead of the drawing's own."""

    group: str
    zoom: float
    face: _Face


def draw_face(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One random face: (image size x size x 3 float32 in [0, 1], part labels size x size uint8).

    Label k > 0 is ``CELEBAMASK_PARTS[k - 1]``; 0 is background. ``l_*`` parts are on the image's left.
    """
    drawing = draw(lambda kind: rng, size)
    return drawing.image, drawing.labels


def draw(draws: Draws, size: int, placement: Placement | None = None) -> Drawing:
    """The face whose random draws come from ``draws`` (see :data:`Draws`).

    With a ``placement``, that group's shapes use its layout, and its colours the drawing's skin and hair.
    """
    look = draws("look")
    background_top, background_bottom = look.uniform(0.05, 0.95, (2, 3)).astype(np.float32)
    height = (_grid(size)[1][..., None] + 1) / 2
    canvas = _Canvas(
        background_top + height * (background_bottom - background_top), zoom=draws("face").uniform(1.45, 1.65)
    )
    face = _Face.random(draws("face"), look)
    placed = None
    if placement is not None:
        placed = (canvas.placed(placement.zoom), replace(placement.face, skin=face.skin, hair=face.hair))

    def where(group: str) -> tuple[_Canvas, _Face]:
        return placed if placement is not None and group == placement.group else (canvas, face)

    _paint_clothes(canvas, face, draws("clothes"), look)
    hair_field, head = _paint_hair_behind(*where("hair"), draws("hair"), look)
    _paint_head(canvas, face, draws("head"), look)
    _paint_hair_cap(*where("hair"), draws("hair"), hair_field, head)
    _paint_brows_and_eyes(where("brows"), where("eyes"), draws("brows"), draws("eyes"), look)
    _paint_nose(*where("nose"), draws("nose"))
    _paint_lips_and_mouth(*where("lips_mouth"), draws("lips_mouth"), look)
    image = _lit(canvas, look)
    if placed is None:
        return Drawing(image, canvas.labels, canvas.zoom, face)
    return Drawing(image, canvas.labels, canvas.zoom, face, placed[0].covered, placed[0].touched)


def _paint_clothes(canvas: _Canvas, face: _Face, shape: np.random.Generator, look: np.random.Generator) -> None:
    bottom = 1.0 / canvas.zoom
    cloth_ru, cloth_rv = shape.uniform(0.75, 1.0), shape.uniform(0.25, 0.35)
    cloth = look.uniform(0.05, 0.95, 3)
    cloth_ellipse = (face.u, bottom + 0.1, cloth_ru, cloth_rv)
    canvas.paint(ellipse_box(*cloth_ellipse), lambda u, v: ellipse(u, v, *cloth_ellipse), cloth, "cloth")


def _paint_hair_behind(canvas: _Canvas, face: _Face, shape: np.random.Generator, look: np.random.Generator):
    """Hair behind the head (a cap ellipse and hair hanging to a random length).

    Returns the hair colour field (strands: stripes bent by smooth noise) and the head ellipse.
    """
    uniform = shape.uniform
    strands = 1.0 + 0.08 * np.sin(canvas.u * look.uniform(40, 90) + 2.5 * _smooth_noise(look, canvas.size, 6))
    hair_field = face.hair * strands[..., None]
    head = (face.u, face.v - 0.1, face.ru * uniform(1.08, 1.2), face.rv_top * uniform(1.1, 1.25))
    length = float(shape.choice([face.v, face.v + face.rv_chin * uniform(0.6, 1.0), uniform(0.75, 1.05)]))
    width = face.ru * uniform(1.15, 1.45)

    def behind_head(u, v):
        hanging = np.maximum(np.maximum(np.abs(u - face.u) - width, v - length), head[1] - v)
        return np.minimum(ellipse(u, v, *head), hanging)

    reach = max(width, head[2])
    box = (face.u - reach, face.u + reach, head[1] - head[3], max(length, head[1] + head[3]))
    canvas.paint(box, behind_head, hair_field, "hair")
    return hair_field, head


def _paint_head(canvas: _Canvas, face: _Face, shape: np.random.Generator, look: np.random.Generator) -> None:
    """Neck, ears and the face (shaded towards its rim)."""
    neck_ru = face.ru * shape.uniform(0.45, 0.6)

    def neck(u, v):
        return np.maximum(np.abs(u - face.u) - neck_ru, face.v - v)

    canvas.paint((face.u - neck_ru, face.u + neck_ru, face.v, 1.0 / canvas.zoom), neck, face.skin * 0.82, "neck")
    for side, part in ((-1, "l_ear"), (1, "r_ear")):
        ear = (face.u + side * face.ru * 0.97, face.eye_v + 0.06, 0.06, 0.11)
        canvas.paint(ellipse_box(*ear), lambda u, v, ear=ear: ellipse(u, v, *ear), face.skin * 0.93, part)

    def skin(u, v):
        rv = np.where(v < face.v, face.rv_top, face.rv_chin)
        return (np.sqrt(((u - face.u) / face.ru) ** 2 + ((v - face.v) / rv) ** 2) - 1.0) * face.ru

    rim = (skin(canvas.u, canvas.v) / face.ru + 1.0) ** 2
    shading = 1.0 - 0.16 * rim + 0.03 * _smooth_noise(look, canvas.size, 5)
    box = (face.u - face.ru, face.u + face.ru, face.v - face.rv_top, face.v + face.rv_chin)
    canvas.paint(box, skin, face.skin * shading[..., None], "skin")


def _paint_hair_cap(canvas: _Canvas, face: _Face, shape: np.random.Generator, hair_field: np.ndarray, head) -> None:
    """The hair cap above a parted, swept hairline."""
    uniform = shape.uniform
    part_u, forehead = face.u + uniform(-0.2, 0.2), face.eye_v - uniform(0.16, 0.34)
    notch, sweep = uniform(0, 0.1), uniform(-0.25, 0.25)

    def cap(u, v):
        parting = notch * np.exp(-(((u - part_u) / 0.08) ** 2))
        hairline = forehead + 0.5 * (u - face.u) ** 2 - parting + sweep * (u - part_u)
        return np.maximum(ellipse(u, v, *head), v - hairline)

    canvas.paint(ellipse_box(*head), cap, hair_field, "hair")


def _paint_brows_and_eyes(brows_at, eyes_at, brow_shape, eye_shape, look: np.random.Generator) -> None:
    """Arched brows, then eye whites with an iris and a pupil clipped to them; ``*_at``: (canvas, face)."""
    (brow_canvas, brow_face), (eye_canvas, eye_face) = brows_at, eyes_at
    uniform = brow_shape.uniform
    brow_v, brow_ru, brow_half_thickness = (
        brow_face.eye_v - uniform(0.08, 0.12),
        uniform(0.07, 0.1),
        uniform(0.012, 0.022),
    )
    arch, brow_colour = uniform(0.5, 3.0), brow_face.hair * look.uniform(0.7, 0.9)
    iris_colour, iris_r = _pick(look, IRIS_COLOURS, 0.05), eye_face.eye_rv * eye_shape.uniform(0.75, 0.95)
    gaze_u = eye_shape.uniform(-0.3, 0.3) * eye_face.eye_ru
    gaze_v = eye_shape.uniform(-0.1, 0.1) * eye_face.eye_rv
    for side, brow_part, eye_part in ((-1, "l_brow", "l_eye"), (1, "r_brow", "r_eye")):
        centre = brow_face.u + side * brow_face.eye_gap
        brow_bottom = brow_v + arch * brow_ru**2 + brow_half_thickness
        brow_box = (centre - brow_ru, centre + brow_ru, brow_v - brow_half_thickness, brow_bottom)

        def brow(u, v, centre=centre):
            band = np.abs(v - brow_v - arch * (u - centre) ** 2) - brow_half_thickness
            return np.maximum(band, np.abs(u - centre) - brow_ru)

        brow_canvas.paint(brow_box, brow, brow_colour, brow_part)
        _paint_eye(
            eye_canvas, eye_face, eye_face.u + side * eye_face.eye_gap, eye_part, iris_colour, iris_r, gaze_u, gaze_v
        )


def _paint_eye(canvas: _Canvas, face: _Face, centre: float, part: str, iris_colour, iris_r, gaze_u, gaze_v) -> None:
    """An eye white around ``centre``, an iris and a pupil clipped to it."""

    def eye_white(u, v):
        return ellipse(u, v, centre, face.eye_v, face.eye_ru, face.eye_rv)

    def iris(u, v, scale=1.0):
        disc = ellipse(u, v, centre + gaze_u, face.eye_v + gaze_v, iris_r * scale, iris_r * scale)
        return np.maximum(disc, eye_white(u, v))

    eye_box = ellipse_box(centre, face.eye_v, face.eye_ru, face.eye_rv)
    canvas.paint(eye_box, eye_white, (0.93, 0.91, 0.88), part)
    canvas.paint(eye_box, iris, iris_colour)
    canvas.paint(eye_box, lambda u, v: iris(u, v, scale=0.45), (0.24, 0.21, 0.21))


def _paint_nose(canvas: _Canvas, face: _Face, shape: np.random.Generator) -> None:
    """A widening bridge ending in rounded wings, darker and redder than the skin, lighter at the tip."""
    bridge_width, wing_width = shape.uniform(0.04, 0.055), shape.uniform(0.075, 0.1)

    def along_nose(v):
        return np.clip((v - face.nose_top) / (face.nose_tip - face.nose_top), 0.0, 1.0)

    def nose(u, v):
        half_width = bridge_width + (wing_width - bridge_width) * along_nose(v) ** 2
        bridge = np.maximum(np.maximum(np.abs(u - face.u) - half_width, face.nose_top - v), v - face.nose_tip)
        return np.minimum(bridge, ellipse(u, v, face.u, face.nose_tip - 0.015, wing_width * 1.1, 0.035))

    colour = face.skin * np.float32([0.86, 0.68, 0.66]) * (1.0 + 0.1 * along_nose(canvas.v)[..., None])
    box = (face.u - wing_width * 1.1, face.u + wing_width * 1.1, face.nose_top, face.nose_tip + 0.02)
    canvas.paint(box, nose, colour, "nose")


def _paint_lips_and_mouth(canvas: _Canvas, face: _Face, shape: np.random.Generator, look: np.random.Generator) -> None:
    """Lips (a cupid's bow on the upper one) around a mouth that is open 40% of the time."""
    uniform = shape.uniform
    mouth_ru, gap = uniform(0.14, 0.2), float(shape.choice([0.0, uniform(0.01, 0.035)], p=[0.6, 0.4]))
    upper_height, lower_height = uniform(0.045, 0.065), uniform(0.05, 0.075)
    lips = 0.85 * _pick(look, LIP_COLOURS, 0.05, unlike=face.skin) + 0.15 * face.skin
    upper_edge, lower_edge = face.mouth_v - gap / 2, face.mouth_v + gap / 2

    def profile(u):
        return np.clip(1.0 - ((u - face.u) / mouth_ru) ** 2, 0.0, 1.0)

    def upper_lip(u, v):
        bow = 1.0 - 0.35 * np.exp(-(((u - face.u) / 0.03) ** 2))
        inside = np.maximum(upper_edge - upper_height * profile(u) * bow - v, v - upper_edge)
        return np.maximum(inside, np.abs(u - face.u) - mouth_ru)

    def lower_lip(u, v):
        inside = np.maximum(v - lower_edge - lower_height * profile(u), lower_edge - v)
        return np.maximum(inside, np.abs(u - face.u) - mouth_ru)

    lips_box = (face.u - mouth_ru, face.u + mouth_ru, upper_edge - upper_height, lower_edge + lower_height)
    canvas.paint(lips_box, upper_lip, lips * 0.92, "u_lip")
    canvas.paint(lips_box, lower_lip, lips, "l_lip")
    if gap > 0:
        mouth = (face.u, face.mouth_v, mouth_ru * 0.8, gap / 2)
        canvas.paint(ellipse_box(*mouth), lambda u, v: ellipse(u, v, *mouth), (0.55, 0.24, 0.24), "mouth")


def _lit(canvas: _Canvas, look: np.random.Generator) -> np.ndarray:
    """The canvas under soft directional light, with every part pixel lifted to ``MIN_PART_BRIGHTNESS``."""
    angle, strength = look.uniform(0, 2 * np.pi), look.uniform(0.0, 0.2)
    light = 1.0 + strength * (math.cos(angle) * canvas.u + math.sin(angle) * canvas.v) / math.sqrt(2)
    image = np.clip(canvas.image * light[..., None], 0.0, 1.0)
    lift = np.clip(MIN_PART_BRIGHTNESS - image.mean(axis=-1), 0.0, None) * (canvas.labels > 0)
    return np.clip(image + lift[..., None], 0.0, 1.0)


def _seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(n)


def _write_face(root: Path, index: int, image: np.ndarray, labels: np.ndarray) -> None:
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(image_path(root, index), quality=95, subsampling=0)
    for part in np.unique(labels[labels > 0]):
        name = CELEBAMASK_PARTS[part - 1]
        Image.fromarray((labels == part).astype(np.uint8) * 255).save(mask_path(root, index, name), compress_level=1)


def _clear_previous_set(out: Path) -> None:
    """Make ``out`` ready: it must be empty, absent or a previous synthetic set (which is removed)."""
    if not out.exists():
        return
    if (out / MANIFEST_FILE).is_file():
        (out / MANIFEST_FILE).unlink()  # first, so a half-removed set never looks complete
        for folder in (IMAGE_DIR, MASK_DIR, DEFAULT_CACHE_FOLDER):
            shutil.rmtree(out / folder, ignore_errors=True)
        for file in (MAPPING_FILE, PARTITION_FILE):
            (out / file).unlink(missing_ok=True)
    elif any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no {MANIFEST_FILE}; choose an empty or new folder")


def generate(out: str | os.PathLike, n: int, size: int = 128, seed: int = 0, partition: bool = False) -> Path:
    """Draw ``n`` faces of ``size`` px into ``out`` in the CelebAMask-HQ layout; return ``out``.

    Writes ``CelebA-HQ-img/<i>.jpg`` (quality 95, no chroma subsampling), the part masks, the
    mapping file (CelebA file of image i: ``<i+1:06d>.jpg``), with ``partition`` a CelebA-style
    ``list_eval_partition.txt`` (80/10/10 by index), and last ``synthfaces.json``, which marks the
    set complete. A previous synthetic set in ``out`` is replaced; any other content is an error.
    """
    if not (isinstance(n, int) and n > 0 and isinstance(size, int) and size >= 8):
        raise ValueError(f"generate: need n >= 1 and size >= 8, got n={n!r}, size={size!r}")
    out = Path(out)
    _clear_previous_set(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for folder in range((n - 1) // 2000 + 1):
        mask_path(out, folder * 2000, "skin").parent.mkdir(parents=True, exist_ok=True)
    for index, sequence in enumerate(_seeds(seed, n)):
        _write_face(out, index, *draw_face(np.random.default_rng(sequence), size))
    rows = "".join(f"{i} {i} {i + 1:06d}.jpg\n" for i in range(n))
    atomic_write_text(out / MAPPING_FILE, f"idx orig_idx orig_file\n{rows}")
    if partition:
        bounds = np.cumsum(PARTITION_FRACTIONS)[:2] * n
        codes = np.searchsorted(bounds, np.arange(n), side="right")
        atomic_write_text(out / PARTITION_FILE, "".join(f"{i + 1:06d}.jpg {c}\n" for i, c in enumerate(codes)))
    atomic_write_json(out / MANIFEST_FILE, _manifest(n, size, seed, partition))
    return out


def _manifest(n: int, size: int, seed: int, partition: bool) -> dict:
    return {
        "generator": "l2sae.data.synthfaces",
        "version": GENERATOR_VERSION,
        "n": n,
        "size": size,
        "seed": seed,
        "partition": partition,
    }


def ensure_synthfaces(root: str | os.PathLike, n: int, size: int = 128, seed: int = 0, partition: bool = False) -> Path:
    """Generate the set into ``root`` unless a complete one with these settings is there already.

    The new set is drawn in a temporary folder beside ``root`` and renamed into place, so ``root``
    never holds a half-written set. Runs preparing the same set at once take turns (a lock file
    ``.<root name>.lock`` beside it): the first draws it, the others find it complete. Returns ``root``.
    """
    root = Path(root)
    if _is_complete(root, n, size, seed, partition):
        return root
    with file_lock(root.with_name(f".{root.name}.lock")):
        if _is_complete(root, n, size, seed, partition):  # drawn by another run while this one waited
            return root
        if root.exists() and any(root.iterdir()) and not (root / MANIFEST_FILE).is_file():
            raise FileExistsError(
                f"{root} is not empty and holds no {MANIFEST_FILE}; point data.root at another folder"
            )
        temp = temporary_sibling(root)
        try:
            generate(temp, n, size, seed, partition)
            if root.exists():
                old = temp.with_suffix(".old")
                os.replace(root, old)
                os.replace(temp, root)
                shutil.rmtree(old)
            else:
                os.replace(temp, root)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return root


def _is_complete(root: Path, n: int, size: int, seed: int, partition: bool) -> bool:
    try:
        return json.loads((root / MANIFEST_FILE).read_text()) == _manifest(n, size, seed, partition)
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (empty, new, or a previous synthetic set)")
    parser.add_argument("--n", type=int, default=800, help="number of faces")
    parser.add_argument("--size", type=int, default=128, help="image and mask size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--partition", action="store_true", help="also write a CelebA-style list_eval_partition.txt")
    args = parser.parse_args(argv)
    try:
        generate(args.out, args.n, args.size, args.seed, args.partition)
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {args.n} faces of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
