"""Ground truth for structure swaps, drawn from the synthetic faces' parameters.

For face A, donor B (faces of one synthetic set) and a region, the ground truth is A drawn again with that
region's part group taking B's geometry and keeping A's appearance:

- geometry: B's shape draws for the group (e.g. the nose's bridge and wing widths), B's face layout
  (where the nose sits) and B's magnification, so the group's shapes land on exactly the pixels they
  cover in B's own drawing;
- appearance: everything else A draws (skin, hair, iris and lip colours, hair strands, shading, light), and
  every other part's geometry.

"Placed" precisely: the region's parts in the result cover the pixels B's region shapes cover in B's drawing
(``placed``), except where A paints a later part over them (the drawing order of :mod:`l2sae.data.synthfaces`:
hair behind the head, neck, ears, skin, hair cap, brows, eyes, nose, lips and mouth). A with its own region
is A, pixel for pixel. Skin is not swappable: the face oval carries every other part's layout.

To look at a set (the quick start's: its test split, faces 736-799 of seed 0 at 64 px)::

    python -m l2sae.data.synthswap --out swaps --seed 0 --size 64 --first 736 --pairs 32
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from l2sae.data.synthfaces import LABEL, SHAPE_GROUPS, Drawing, Placement, draw
from l2sae.regions import DEFAULT_REGION_PARTS, ROI_NAMES
from l2sae.utils.errors import ConfigError
from l2sae.utils.files import atomic_write_json, temporary_sibling

SWAPPABLE_ROIS: tuple[str, ...] = tuple(group for group in SHAPE_GROUPS if group in ROI_NAMES)  # all but skin


def face_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of face ``index`` in the set drawn with ``seed`` (as :func:`synthfaces.generate` draws it)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class _Recorder:
    """Stands in for a numpy Generator: each draw comes from ``rng`` and its value is appended to ``values``."""

    def __init__(self, rng: np.random.Generator, values: list) -> None:
        self.rng, self.values = rng, values

    def __getattr__(self, name: str):
        method = getattr(self.rng, name)

        def recorded(*args, **kwargs):
            value = method(*args, **kwargs)
            self.values.append(value)
            return value

        return recorded


class _Replay:
    """Stands in for a numpy Generator: each draw, whatever its arguments, is the next recorded value."""

    def __init__(self, values: Iterator) -> None:
        self.values = values

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: next(self.values)


def _recorded_face(seed: int, index: int, size: int) -> tuple[Drawing, dict[str, list]]:
    """Face ``index`` of the set and its draws by kind (see :data:`l2sae.data.synthfaces.Draws`)."""
    rng, values = face_rng(seed, index), defaultdict(list)
    return draw(lambda kind: _Recorder(rng, values[kind]), size), values


def _replayed(draws: dict[str, list], size: int, placement: Placement, group_draws: list | None = None) -> Drawing:
    """The face whose draws were recorded as ``draws``, its placed group's shape draws taken from ``group_draws``."""
    queues = {kind: iter(values) for kind, values in draws.items()}
    if group_draws is not None:
        queues[placement.group] = iter(group_draws)
    return draw(lambda kind: _Replay(queues[kind]), size, placement)


@dataclass(frozen=True)
class StructureSwapCase:
    """One structure swap with its ground truth: face A (``index``), donor B (``donor_index``), region ``roi``.

    face, donor, truth: size x size x 3 float32 in [0, 1] (truth: A whose region has B's geometry);
    face_mask, donor_mask, truth_mask: the region's mask (size x size bool) in each; placed: the pixels B's
    region shapes cover (truth_mask is placed minus A's later parts painted over it); truth_labels: the
    truth's part labels (size x size uint8, as :func:`l2sae.data.synthfaces.draw_face`'s); changed: the
    pixels the region's shapes reach in A or in the truth, antialiased rims included (bool; truth is face
    outside it).
    """

    index: int
    donor_index: int
    roi: str
    face: np.ndarray
    donor: np.ndarray
    truth: np.ndarray
    face_mask: np.ndarray
    donor_mask: np.ndarray
    truth_mask: np.ndarray
    placed: np.ndarray
    truth_labels: np.ndarray
    changed: np.ndarray


def region_mask(labels: np.ndarray, parts: Sequence[str]) -> np.ndarray:
    """Pixels (bool, labels' shape) whose part label is one of ``parts``."""
    return np.isin(labels, [LABEL[part] for part in parts])


def check_roi(roi: str, key: str = "roi") -> str:
    if roi not in SWAPPABLE_ROIS:
        raise ConfigError(f"{key}: no structure-swap ground truth for {roi!r}; choose from {', '.join(SWAPPABLE_ROIS)}")
    return roi


def draw_swaps(
    seed: int,
    size: int,
    pairs: Sequence[tuple[int, int]],
    rois: Sequence[str],
    region_parts: Mapping[str, Sequence[str]] = DEFAULT_REGION_PARTS,
) -> list[StructureSwapCase]:
    """The ground truth of every (face, donor) pair of ``pairs`` and region of ``rois``, pair by pair.

    Faces are those of the synthetic set drawn with ``seed`` at ``size`` px (face i is image i of the set);
    ``region_parts`` groups the part labels into regions, as ``data.regions`` does.
    """
    rois = [check_roi(roi, "structure_swap.rois") for roi in rois]
    recorded: dict[int, tuple[Drawing, dict[str, list]]] = {}
    cases = []
    for index, donor_index in pairs:
        for i in (index, donor_index):
            if i not in recorded:
                recorded[i] = _recorded_face(seed, i, size)
        (face, face_draws), (donor, donor_draws) = recorded[index], recorded[donor_index]
        for roi in rois:
            truth = _replayed(face_draws, size, Placement(roi, donor.zoom, donor.face), donor_draws[roi])
            own = _replayed(face_draws, size, Placement(roi, face.zoom, face.face))  # A again, to see its reach
            parts = region_parts[roi]
            cases.append(
                StructureSwapCase(
                    index=index,
                    donor_index=donor_index,
                    roi=roi,
                    face=face.image,
                    donor=donor.image,
                    truth=truth.image,
                    face_mask=region_mask(face.labels, parts),
                    donor_mask=region_mask(donor.labels, parts),
                    truth_mask=region_mask(truth.labels, parts),
                    placed=truth.placed,
                    truth_labels=truth.labels,
                    changed=own.touched | truth.touched,
                )
            )
    return cases


def fixed_pairs(indices: Sequence[int], count: int) -> list[tuple[int, int]]:
    """The fixed swap set: face ``indices[2k]`` takes donor ``indices[2k + 1]``'s region, for the first ``count`` k."""
    if 2 * count > len(indices):
        raise ConfigError(f"structure_swap.pairs: {count} pairs need {2 * count} images, the split has {len(indices)}")
    return [(indices[2 * k], indices[2 * k + 1]) for k in range(count)]


def write_swaps(out: str | os.PathLike, cases: Sequence[StructureSwapCase]) -> Path:
    """Write each case as ``<roi>/<index>_from_<donor>.png`` (face | donor | truth | the truth's region mask,
    side by side) and ``swaps.json`` (the cases) into the new folder ``out``, built aside and renamed into
    place; return ``out``."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(out)
    try:
        for case in cases:
            mask = np.repeat(case.truth_mask[..., None], 3, axis=-1).astype(np.float32)
            strip = np.concatenate([case.face, case.donor, case.truth, mask], axis=1)
            path = temporary / case.roi / f"{case.index}_from_{case.donor_index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(strip * 255).astype(np.uint8)).save(path)
        listing = [{"roi": case.roi, "face": case.index, "donor": case.donor_index} for case in cases]
        atomic_write_json(temporary / "swaps.json", {"columns": "face | donor | truth | truth mask", "swaps": listing})
        os.replace(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw structure-swap ground truth of a synthetic face set.")
    parser.add_argument("--out", required=True, help="a new folder")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic set's seed")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels")
    parser.add_argument("--first", type=int, default=736, help="face 2k + first takes face 2k + 1 + first's region")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--rois", nargs="+", default=list(SWAPPABLE_ROIS), choices=SWAPPABLE_ROIS)
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.first < 0:
        parser.error("--pairs must be at least 1 and --first not negative")
    pairs = fixed_pairs(list(range(args.first, args.first + 2 * args.pairs)), args.pairs)
    try:
        write_swaps(args.out, draw_swaps(args.seed, args.size, pairs, args.rois))
    except FileExistsError as error:
        parser.error(str(error))
    print(f"wrote {len(pairs) * len(args.rois)} swaps to {args.out}")


if __name__ == "__main__":
    main()
