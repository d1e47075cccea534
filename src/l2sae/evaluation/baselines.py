"""Baselines: folders of edited images made elsewhere (e.g. by SemanticStyleGAN), paired by image stem.

A baseline folder holds, for evaluation image ``<stem>`` and region ``<roi>``, its edit as

    DIR/<roi>/<stem>.<ext>      (nested)   or   DIR/<stem>_<roi>.<ext>   (flat)

with ``<ext>`` png, jpg, jpeg or webp; both layouts may be mixed. Optional extras:

    DIR/recon/<stem>.<ext>      the method's reconstruction (inversion) of the input
    DIR/timing.csv              rows ``stem,roi,seconds`` (header line required), or
    DIR/timing.json             ``{"seconds_per_edit": x}`` (a number or a list of numbers)

Anything else in the folder is ignored and listed. See docs/semanticstylegan.md.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from l2sae.data.fitting import image_array
from l2sae.evaluation.report import ALL_REGIONS
from l2sae.evaluation.timing import TimingStats
from l2sae.regions import ROI_NAMES
from l2sae.utils.errors import ConfigError
from l2sae.utils.images import check_image, is_image_file, open_image, to_unit_range

RECON_FOLDER = "recon"
TIMING_CSV = "timing.csv"
TIMING_JSON = "timing.json"
EXAMPLES_SHOWN = 5


@dataclass
class BaselineFolder:
    """A scanned baseline folder. ``edits[(roi, stem)]`` and ``recons[stem]`` are image files;
    ``ignored`` lists what fits neither; ``timing`` maps "all" (and regions of timing.csv) to stats."""

    name: str
    root: Path
    edits: dict[tuple[str, str], Path] = field(default_factory=dict)
    recons: dict[str, Path] = field(default_factory=dict)
    ignored: list[Path] = field(default_factory=list)
    timing: dict[str, TimingStats] = field(default_factory=dict)
    timing_file: Path | None = None


def _add(found: dict, key, path: Path) -> None:
    if key in found:
        raise ValueError(f"{found[key]} and {path} are both the image of {key}; keep one of them")
    found[key] = path


def _collect(directory: Path, found: dict, key_of_stem, ignored: list[Path]) -> None:
    """Add the images of ``directory`` to ``found`` under ``key_of_stem(stem)``; list everything else as ignored."""
    for path in sorted(directory.iterdir()):
        if is_image_file(path):
            _add(found, key_of_stem(path.stem), path)
        else:
            ignored.append(path)


def scan_baseline(root: str | Path, rois: Sequence[str], name: str, key: str) -> BaselineFolder:
    """Find the edits of ``rois`` in ``root`` (both layouts), its reconstructions and timing file.

    ``key`` is the config key that named the folder, for error messages.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{key}={root}: no such folder; point it at the folder of {name}'s edited images")
    folder = BaselineFolder(name=name, root=root)
    by_suffix = sorted(rois, key=len, reverse=True)  # "a_b" before "b" when matching flat names
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name in rois:
            _collect(entry, folder.edits, lambda stem, roi=entry.name: (roi, stem), folder.ignored)
        elif entry.is_dir() and entry.name == RECON_FOLDER:
            _collect(entry, folder.recons, lambda stem: stem, folder.ignored)
        elif entry.name in (TIMING_CSV, TIMING_JSON):
            continue
        else:
            roi = next((roi for roi in by_suffix if entry.stem.endswith(f"_{roi}")), None)
            if roi is not None and is_image_file(entry):
                _add(folder.edits, (roi, entry.stem[: -len(roi) - 1]), entry)
            else:
                folder.ignored.append(entry)
    if not folder.edits:
        raise ValueError(
            f"{root}: no edited images of regions {', '.join(rois)} found; expected {root}/<roi>/<stem>.png "
            f"or {root}/<stem>_<roi>.png (png/jpg), see docs/semanticstylegan.md"
        )
    for path in (*folder.edits.values(), *folder.recons.values()):
        check_image(path)  # decoded whole now: a corrupt file fails before any scoring, not when its batch comes
    _check_square(folder)
    folder.timing, folder.timing_file = read_timing(root, rois)
    return folder


def _check_square(folder: BaselineFolder) -> None:
    """Edits and reconstructions must be square like the evaluation images (a centre crop would score another
    framing); the sizes come from the files' headers. Unreadable files are reported when they are read."""
    odd = []
    for path in [*folder.edits.values(), *folder.recons.values()]:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, ValueError):
            continue
        if width != height:
            odd.append(f"{path.relative_to(folder.root)} is {width} x {height}")
    if odd:
        raise ValueError(
            f"{folder.root}: {len(odd)} image(s) are not square ({'; '.join(odd[:EXAMPLES_SHOWN])}); the evaluation "
            f"images are square, so give {folder.name}'s edits of those square images (any square size)"
        )


def read_timing(root: Path, rois: Sequence[str]) -> tuple[dict[str, TimingStats], Path | None]:
    """Seconds per edit from ``timing.csv`` (per region, and overall over the evaluated ``rois`` only, as
    L2SAE's own overall time) or ``timing.json`` (overall)."""
    csv_path, json_path = root / TIMING_CSV, root / TIMING_JSON
    if csv_path.is_file() and json_path.is_file():
        raise ValueError(f"{root}: both {TIMING_CSV} and {TIMING_JSON} are present; keep one of them")
    if csv_path.is_file():
        return _read_timing_csv(csv_path, rois), csv_path
    if json_path.is_file():
        return _read_timing_json(json_path), json_path
    return {}, None


def _read_timing_csv(path: Path, rois: Sequence[str]) -> dict[str, TimingStats]:
    by_region: dict[str, list[float]] = {}
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        for row in rows:
            by_region.setdefault(row["roi"], []).append(float(row["seconds"]))
    except (KeyError, TypeError, ValueError, csv.Error) as error:
        raise ValueError(f"{path}: expected CSV rows 'stem,roi,seconds' under that header line ({error})") from error
    unknown = sorted(set(by_region) - set(ROI_NAMES))
    if unknown:
        raise ValueError(f"{path}: unknown region(s) {unknown} in column roi; expected {', '.join(ROI_NAMES)}")
    for seconds in by_region.values():
        _check_seconds(seconds, path)
    if not by_region:
        raise ValueError(f"{path}: no timing rows; expected 'stem,roi,seconds' lines or remove the file")
    timing = {roi: TimingStats.from_seconds(seconds) for roi, seconds in by_region.items()}
    evaluated = [value for roi in rois for value in by_region.get(roi, [])]
    if evaluated:
        timing[ALL_REGIONS] = TimingStats.from_seconds(evaluated)
    return timing


def _read_timing_json(path: Path) -> dict[str, TimingStats]:
    try:
        seconds = json.loads(path.read_text())["seconds_per_edit"]
        seconds = [seconds] if isinstance(seconds, (int, float)) else list(seconds)
        _check_seconds(seconds, path)
        return {ALL_REGIONS: TimingStats.from_seconds([float(value) for value in seconds])}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f'{path}: expected {{"seconds_per_edit": <number or list of numbers>}} ({type(error).__name__}: {error})'
        ) from error


def _check_seconds(seconds: list, path: Path) -> None:
    """Times must be finite, non-negative numbers (not booleans); a ValueError naming ``path`` otherwise."""
    for value in seconds:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}: seconds per edit must be finite numbers >= 0, got {value!r}")


def load_image(path: Path, size: int) -> torch.Tensor:
    """An image file as 3 x size x size in [-1, 1], resized exactly like the evaluation images."""
    return to_unit_range(image_array(open_image(path), size))


@dataclass
class Pairing:
    """Which of a baseline's files were used for the evaluation images seen, and which were missing."""

    folder: BaselineFolder
    missing: list[str] = field(default_factory=list)
    missing_recons: list[str] = field(default_factory=list)
    stems_seen: set[str] = field(default_factory=set)

    def edit(self, roi: str, stem: str) -> Path | None:
        """The edit of ``stem``'s region ``roi``, or None (recorded as missing)."""
        self.stems_seen.add(stem)
        path = self.folder.edits.get((roi, stem))
        if path is None:
            self.missing.append(f"{roi}/{stem}")
        return path

    def recon(self, stem: str) -> Path | None:
        """The reconstruction of ``stem`` where the folder has any reconstructions (missing ones are recorded)."""
        self.stems_seen.add(stem)
        path = self.folder.recons.get(stem)
        if path is None and self.folder.recons:
            self.missing_recons.append(stem)
        return path

    def summary(self) -> dict:
        """Counts and first examples of missing edits, unused (extra) files and ignored files."""
        files = [*((stem, path) for (_, stem), path in self.folder.edits.items()), *self.folder.recons.items()]
        extra = sorted(str(path.relative_to(self.folder.root)) for stem, path in files if stem not in self.stems_seen)
        ignored = [str(path.relative_to(self.folder.root)) for path in self.folder.ignored]
        return {
            "folder": str(self.folder.root),
            "timing_file": None if self.folder.timing_file is None else str(self.folder.timing_file),
            "missing": len(self.missing),
            "missing_examples": self.missing[:EXAMPLES_SHOWN],
            "missing_recons": len(self.missing_recons),
            "missing_recons_examples": self.missing_recons[:EXAMPLES_SHOWN],
            "extra": len(extra),
            "extra_examples": extra[:EXAMPLES_SHOWN],
            "ignored": len(ignored),
            "ignored_examples": ignored[:EXAMPLES_SHOWN],
        }
