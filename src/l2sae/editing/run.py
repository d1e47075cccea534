"""``python edit.py``: edit one image or a folder of images and write each edit with a grid.

For every input ``NAME.ext`` the output folder receives ``NAME_<mode>_<rois>.png`` (the edit, at
the input's size when ``keep_size``) and ``NAME_<mode>_<rois>_grid.png`` (input | mask | global
edit | local edit, at the model's size). Types and closed choices are checked where Hydra composes
``conf/edit.yaml`` (its schema: :class:`EditConfig`); the meaning of the settings, every input file and
every output name (none may overwrite an input) are checked by :func:`_checked_job` before any work.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid
from tqdm import tqdm

from l2sae.editing.config import EditorConfig, editor_from_config
from l2sae.editing.editor import (
    MAX_SEED,
    EditResult,
    EncodedFaces,
    L2SAEEditor,
    check_checkpoint_files,
    check_seed,
    check_strength,
)
from l2sae.editing.photo import EditMode
from l2sae.editing.photo_outputs import edit_photo_files
from l2sae.editing.placement import SizeMode, fit_to_model, paste_back
from l2sae.photos import Align, check_face_choice
from l2sae.regions import check_rois
from l2sae.utils.device import resolve_device
from l2sae.utils.errors import ConfigError, ImageFileError
from l2sae.utils.files import check_output_folder
from l2sae.utils.images import check_image, list_images, read_image, write_image

log = logging.getLogger(__name__)

_PARTNER_KEY = {"swap_style": "reference", "swap_structure": "donor"}  # the extra image each swap needs


@dataclass
class EditConfig(EditorConfig):
    """The schema of ``conf/edit.yaml`` (its defaults and comments are there): types and closed choices."""

    task_name: str
    input: str
    align: Align
    faces: Any  # all | largest | a face number: check_face_choice
    min_face_size: float | None
    detection_side: int
    upsample: int | None
    out: str
    mode: EditMode
    roi: Any  # a region or a list of them: l2sae.regions.check_rois
    strength: float
    seed: int | None
    reference: str | None
    donor: str | None
    batch_size: int
    size_mode: SizeMode
    keep_size: bool
    max_pixels: int | None
    paths: dict[str, Any]


ConfigStore.instance().store(name="edit_schema", node=EditConfig)


@dataclass(frozen=True)
class EditJob:
    """A checked edit configuration."""

    inputs: list[Path]
    show_progress: bool
    out: Path
    device: torch.device
    mode: EditMode
    rois: tuple[str, ...]
    strength: float
    seed: int  # a null seed in the config is drawn once here, so every batch gets the same style change
    partner: Path | None  # the reference (swap_style) or donor (swap_structure) image
    size_mode: SizeMode
    keep_size: bool
    batch_size: int
    max_pixels: int | None  # inputs with more pixels are refused (None: no cap)
    align: Align  # auto | ffhq | crop: faces found and aligned (l2sae.photos); none: the whole picture
    faces: str | int  # all | largest | a face number
    min_face_size: float | None  # faces with a smaller aligned square (px) are skipped (None: half the model side)
    detection: dict[str, int | None]  # detect_faces' detection_side and upsample

    def output_name(self, source: Path, kind: str = "") -> Path:
        return self.out / f"{source.stem}_{self.mode}_{'+'.join(self.rois)}{kind}.png"


def _checked_job(cfg: DictConfig) -> EditJob:
    """Check the meaning of every setting (their types: :class:`EditConfig`) and every file named by ``cfg``;
    errors name the config key."""
    for key in ("input", "out"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise ConfigError(f"{key}: required, e.g. `python edit.py input=face.png out=edits/`")
    rois = check_rois(cfg.roi, "roi")  # known regions (the editor's slicing must have them: editor_from_config)
    device = resolve_device(cfg.device)
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {cfg.batch_size!r}")
    strength, seed = check_strength(cfg.strength), check_seed(cfg.seed)
    check_checkpoint_files(cfg.ckpt.smn, cfg.ckpt.smpn)
    max_pixels = cfg.max_pixels
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"max_pixels: expected a positive integer or null (no cap), got {max_pixels!r}")
    partner = None
    if cfg.mode in _PARTNER_KEY:
        key = _PARTNER_KEY[cfg.mode]
        if not cfg.get(key):
            raise ConfigError(f"{key}: mode={cfg.mode} needs {key}=IMAGE")
        partner = Path(cfg[key])
        check_image(partner, max_pixels)
    faces = check_face_choice(cfg.faces)  # a ValueError naming the key
    if cfg.min_face_size is not None and cfg.min_face_size < 0:
        raise ConfigError(f"min_face_size: expected a size in pixels or null, got {cfg.min_face_size!r}")
    if cfg.detection_side < 64:
        raise ConfigError(f"detection_side: expected a side of at least 64 px, got {cfg.detection_side!r}")
    if cfg.upsample is not None and not 0 <= cfg.upsample <= 2:
        raise ConfigError(f"upsample: expected 0, 1, 2 or null (0, then 1 when no face is found), got {cfg.upsample!r}")
    inputs = list_images(cfg.input)
    for path in inputs if cfg.align == Align.none else ():  # decoded whole: a bad file fails before any output
        check_image(path, max_pixels)  # is written (photos are checked one by one: bad ones named, others edited)
    job = EditJob(
        inputs=inputs,
        show_progress=Path(cfg.input).is_dir(),
        out=Path(cfg.out),
        device=device,
        mode=cfg.mode,
        rois=rois,
        strength=strength,
        seed=torch.Generator().seed() & MAX_SEED if seed is None else seed,  # a random seed in the checked range
        partner=partner,
        size_mode=cfg.size_mode,
        keep_size=bool(cfg.keep_size),
        batch_size=cfg.batch_size,
        max_pixels=max_pixels,
        align=cfg.align,
        faces=faces,
        min_face_size=cfg.min_face_size,
        detection={"detection_side": cfg.detection_side, "upsample": cfg.upsample},
    )
    names = [job.output_name(path) for path in inputs]
    if len(set(names)) != len(names):
        clash = next(path for path, name in zip(inputs, names) if names.count(name) > 1)
        raise ConfigError(f"input: several files share the name {clash.stem!r} (e.g. {clash}); rename one")
    sources = {path.resolve() for path in inputs} | ({partner.resolve()} if partner else set())
    face_grids = re.compile(  # a photo's per-face grids: NAME_<mode>_<rois>_face<K>_grid.png, K unknown yet
        "|".join(re.escape(job.output_name(path, "_face").name[: -len(".png")]) + r"\d+_grid\.png" for path in inputs)
    )
    for source in sources if job.align != Align.none and inputs else ():
        if source.parent == job.out.resolve() and face_grids.fullmatch(source.name):
            raise ImageFileError(source, "a face's grid would overwrite this input image", "choose another out= folder")
    for path in inputs:
        for output in (job.output_name(path), job.output_name(path, "_grid")):
            if output.resolve() in sources:
                raise ImageFileError(output, "an output would overwrite this input image", "choose another out= folder")
    check_output_folder(job.out)  # a file or an unwritable folder fails now, not after the networks load
    return job


def _grid(images: torch.Tensor, result: EditResult, index: int) -> torch.Tensor:
    """input | mask | global edit | local edit of one image, 3 x S x (4S + padding) in [-1, 1]."""
    matte = result.matte[index].expand(3, -1, -1) * 2.0 - 1.0
    row = [images[index], matte, result.global_edit[index], result.images[index]]
    return make_grid([tile.cpu() for tile in row], nrow=4, padding=2, pad_value=1.0)


def _edit(editor: L2SAEEditor, job: EditJob, images: torch.Tensor, partner: EncodedFaces | None) -> EditResult:
    if job.mode == "style":
        return editor.edit_style(images, job.rois, strength=job.strength, seed=job.seed)
    if job.mode == "swap_style":
        return editor.swap_style(images, partner, job.rois)
    return editor.swap_structure(images, partner, job.rois)


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run(cfg: DictConfig) -> dict:
    """Edit ``cfg.input`` (a file or a folder) and write results into ``cfg.out``; returns timing numbers."""
    job = _checked_job(cfg)
    if cfg.seed is None:
        log.info("seed=null: this run uses seed=%d", job.seed)
    editor = editor_from_config(cfg, job.device, job.rois)
    if job.align != "none":
        return edit_photo_files(editor, job)
    partner = None
    if job.partner is not None:
        partner_view, _ = fit_to_model(read_image(job.partner, job.max_pixels), editor.image_size, job.size_mode)
        partner = editor.encode(partner_view.unsqueeze(0), rois=job.rois if job.mode == "swap_structure" else ())
    started = time.perf_counter()
    with tqdm(total=len(job.inputs), unit="image", desc="edit", disable=not job.show_progress) as progress:
        for paths in _batches(job.inputs, job.batch_size):
            originals = [read_image(path, job.max_pixels) for path in paths]
            views, placements = zip(*(fit_to_model(image, editor.image_size, job.size_mode) for image in originals))
            images = torch.stack(views)
            result = _edit(editor, job, images, partner)
            edited = result.images.cpu()
            for index, (path, original, placement) in enumerate(zip(paths, originals, placements)):
                output = (
                    paste_back(original, images[index], edited[index], placement) if job.keep_size else edited[index]
                )
                write_image(output, job.output_name(path))
                write_image(_grid(images, result, index), job.output_name(path, "_grid"))
            progress.update(len(paths))
    seconds = time.perf_counter() - started
    count = len(job.inputs)
    log.info("wrote %d edit%s to %s (%.3f s per image)", count, "" if count == 1 else "s", job.out, seconds / count)
    return {"images": count, "seconds": seconds, "seconds_per_image": seconds / count}
