"""``edit.py`` on photos (align=auto|ffhq|crop): every face found, aligned, edited and pasted back.

For every input ``NAME.ext`` the output folder receives ``NAME_<mode>_<rois>.png`` (the whole photo at
its own size), ``NAME_<mode>_<rois>_face<K>_grid.png`` per edited face (aligned input | mask | local
edit, at the model's size) and ``NAME_<mode>_<rois>.json`` (per face: box, 68 landmarks, alignment quad,
edited or skipped and why). A photo that cannot be edited (unreadable, no face, every face too small)
gets no output; it is named in the log and in the returned ``failed`` mapping, and the others are edited.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid
from tqdm import tqdm

from l2sae.editing.photo import FaceEdit, PhotoEditResult
from l2sae.photos import PhotoError
from l2sae.utils.errors import ImageFileError
from l2sae.utils.files import atomic_path, atomic_write_json
from l2sae.utils.images import write_image

log = logging.getLogger(__name__)


def face_grid(face: FaceEdit) -> torch.Tensor:
    """aligned input | mask | local edit of one edited face, 3 x S x (3S + padding) in [-1, 1]."""
    row = [face.aligned, face.mask.expand(3, -1, -1) * 2.0 - 1.0, face.local_edit]
    return make_grid(row, nrow=3, padding=2, pad_value=1.0)


def _sidecar(path: Path, result: PhotoEditResult, job, grids: dict[int, str]) -> dict:
    width, height = result.image.size
    return {
        "input": str(path),
        "size": [width, height],
        "align": result.prepared.aligned.align,
        "mode": job.mode,
        "rois": list(job.rois),
        "strength": job.strength if job.mode == "style" else None,
        "seed": job.seed if job.mode == "style" else None,
        "partner": None if job.partner is None else str(job.partner),
        "faces": [{**face.face.to_dict(), "grid": grids.get(index)} for index, face in enumerate(result.faces)],
    }


def _write(path: Path, result: PhotoEditResult, job) -> None:
    grids = {}
    for index, face in enumerate(result.faces):
        if face.status == "edited":
            grid = job.output_name(path, f"_face{index}_grid")
            write_image(face_grid(face), grid)
            grids[index] = grid.name
    with atomic_path(job.output_name(path)) as temporary:
        result.image.save(temporary, format="PNG")
    atomic_write_json(job.output_name(path).with_suffix(".json"), _sidecar(path, result, job, grids))


def edit_photo_files(editor, job) -> dict:
    """Edit every photo of ``job`` (an :class:`l2sae.editing.run.EditJob` with align != "none")."""
    partner = None
    if job.partner is not None:
        partner = editor.prepare_photo(
            job.partner, align=job.align, faces="largest", max_pixels=job.max_pixels, **job.detection
        )
    failed: dict[str, Exception] = {}
    started = time.perf_counter()
    for path in tqdm(job.inputs, unit="photo", desc="edit", disable=not job.show_progress):
        try:
            prepared = editor.prepare_photo(
                path,
                align=job.align,
                faces=job.faces,
                min_face_size=job.min_face_size,
                max_pixels=job.max_pixels,
                **job.detection,
            )
        except (PhotoError, ImageFileError) as error:
            failed[str(path)] = error
            log.warning("not edited: %s", error)
            continue
        result = editor.edit_photo(
            prepared, job.rois, mode=job.mode, strength=job.strength, seed=job.seed, reference=partner, donor=partner
        )
        for index, face in enumerate(result.faces):
            if face.status == "skipped":
                log.info("%s: face %d skipped: %s", path, index, face.reason)
        _write(path, result, job)
    if len(failed) == len(job.inputs):
        if len(failed) == 1:
            raise next(iter(failed.values()))
        raise PhotoError("no photo could be edited:\n" + "\n".join(map(str, failed.values())))
    seconds = time.perf_counter() - started
    edited = len(job.inputs) - len(failed)
    if failed:
        log.warning("%d of %d photos not edited: %s", len(failed), len(job.inputs), ", ".join(failed))
    plural = "" if edited == 1 else "s"
    log.info("wrote %d edited photo%s to %s (%.3f s per photo)", edited, plural, job.out, seconds / edited)
    failed_messages = {name: str(error) for name, error in failed.items()}
    return {"images": edited, "failed": failed_messages, "seconds": seconds, "seconds_per_image": seconds / edited}
