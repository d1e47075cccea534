"""The Gradio page: upload a photo, pick faces and regions, restyle or swap, compare, download.

Every browser session keeps its own :class:`Session` in a ``gr.State``: the uploaded photo is
prepared (faces aligned and encoded) once, so a new strength, seed or region costs at most one
decode per face. All editing events share one concurrency slot: one edit runs at a time, and a
slider dragged while an edit runs only queues its last position.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from l2sae.app import pipeline
from l2sae.app.pipeline import ALL_FACES, MODES, PhotoError, UploadLimits
from l2sae.editing import L2SAEEditor
from l2sae.editing.photo import PreparedPhoto
from l2sae.utils.files import atomic_path

log = logging.getLogger(__name__)

PARTNER_MODES = {"swap_style": "reference image", "swap_structure": "donor image"}  # editor mode -> what it needs
MATTE_TINT = np.array([255.0, 40.0, 40.0])  # the region drawn over the input
IMAGE_HEIGHT = 300  # px on the page of input, mask and result
EDIT_LOCK = "editor"  # concurrency id shared by every event that runs the networks
SESSION_TTL_S = 3 * 3600  # a session's photo is forgotten this long after its last change
# Gradio's cached copies (uploads, results shown or offered for download) older than a session's lifetime are
# removed every quarter of it; a copy handed out again is touched, so nothing a live page shows goes missing
CACHE_CLEANUP = (SESSION_TTL_S // 4, SESSION_TTL_S)  # (every ... s, files older than ... s)
RESULT_STEM_BYTES = 80  # of the upload's name in a result's file name (file names hold 255 bytes)
# small pictures (the 64 px quick start's) fill the views instead of sitting in their middle at their own size;
# the example faces share the column's width (Gradio's columns are at least 100 px: the fourth was cut off)
PAGE_CSS = (
    "#input img, #mask img, #result img {width: 100%; height: 100%; object-fit: contain;} "
    "#examples .grid-container {grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;}"
)


@dataclass(eq=False)
class Session:
    """One browser session's photo (prepared once per face choice), its reference / donor, its files."""

    folder: Path
    name: str = "photo"
    photos: dict[str, PreparedPhoto] = field(default_factory=dict)  # face chooser entry -> prepared photo
    input_path: Path | None = None
    partners: dict[str, PreparedPhoto] = field(default_factory=dict)  # editor mode -> prepared image

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _save(image: Image.Image, path: Path, image_format: str, **options) -> Path:
    """Write atomically (temporary name, then rename); return ``path``."""
    with atomic_path(path) as temporary:
        image.save(temporary, format=image_format, **options)
    return path


def matte_overlay(photo: np.ndarray, matte: np.ndarray) -> Image.Image:
    """The photo (H x W x 3 uint8) with the matte (H x W in [0, 1]) tinted over it at half opacity."""
    alpha = 0.5 * matte[..., None]
    pixels = photo.astype(np.float32) * (1.0 - alpha) + MATTE_TINT * alpha
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))


def _upload_name(path: str | Path) -> str:
    return Path(path).name  # Gradio keeps the uploaded file's own name inside its cache folder


def _result_stem(name: str) -> str:
    """The upload's name without its suffix, cut to :data:`RESULT_STEM_BYTES` bytes (whole UTF-8 characters)."""
    return Path(name).stem.encode()[:RESULT_STEM_BYTES].decode(errors="ignore")


class EditorPage:
    """Builds the page over one editor; ``workdir`` holds every session's files (removed on stop)."""

    def __init__(self, editor: L2SAEEditor, limits: UploadLimits, workdir: Path, examples: Sequence[Path]) -> None:
        self.editor = editor
        self.limits = limits
        self.workdir = Path(workdir)
        self.examples = [Path(path) for path in examples]

    # ---- handlers (each returns values for the outputs wired in build) ----

    def _new_session(self, previous: Session | None) -> Session:
        if previous is not None:
            return previous
        folder = self.workdir / "sessions" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return Session(folder)

    def _prepare(self, path: str | Path, faces: str = "all") -> PreparedPhoto:
        name = _upload_name(path)
        return pipeline.prepare(self.editor, pipeline.open_upload(path, self.limits, name), name, faces)

    def _photo(self, session: Session, face: str) -> PreparedPhoto:
        """The session's photo prepared for the chosen face (each choice prepared once, then cached)."""
        if face not in session.photos:
            every_face = session.photos[ALL_FACES]
            if face not in pipeline.face_choices(every_face):
                raise PhotoError(f"{session.name} has no {face!r}; choose one of the listed faces.")
            prepared = pipeline.prepare(self.editor, every_face.aligned.image, session.name, pipeline.face_index(face))
            session.photos[face] = prepared
        return session.photos[face]

    def _edit(self, session: Session | None, face: str, rois: Sequence[str], mode_label: str, strength, seed):
        """Run one edit; returns (mask over input, result, (before, after), download path, status)."""
        if session is None or not session.photos:
            raise PhotoError("Upload a photo (or click an example face) first.")
        if not rois:
            raise PhotoError("Choose at least one region.")
        mode = MODES[mode_label]
        partner = session.partners.get(mode)
        if mode in PARTNER_MODES and partner is None:
            raise PhotoError(f"Upload a {PARTNER_MODES[mode]} for '{mode_label}'.")
        seed = int(seed or 0)
        started = time.perf_counter()
        prepared = self._photo(session, face)
        result = pipeline.edit(self.editor, prepared, rois, mode, strength=float(strength), seed=seed, partner=partner)
        seconds = time.perf_counter() - started
        stem = f"{_result_stem(session.name)}_{mode}_{'+'.join(rois)}"
        result_path = _save(result.image, session.folder / f"{stem}.png", "PNG", compress_level=1)
        overlay = matte_overlay(prepared.aligned.image, result.matte)
        overlay_path = _save(overlay, session.folder / "mask.jpg", "JPEG", quality=90)
        what = f"strength {float(strength):g}, seed {seed}" if mode == "style" else mode_label
        notes = pipeline.face_notes(session.photos[ALL_FACES])
        status = f"Edited {', '.join(rois)} ({what}) in **{seconds:.2f} s**. {notes}".strip()
        log.info("edit %s %s %s: %.3f s", session.name, mode, "+".join(rois), seconds)
        return (
            str(overlay_path),
            str(result_path),
            (str(session.input_path), str(result_path)),
            str(result_path),
            status,
        )

    def _checked(self, function, *args):
        """Call a handler step; a PhotoError becomes a message on the page (never a stack trace)."""
        try:
            return function(*args)
        except PhotoError as error:  # shown until closed (a toast that fades leaves only the outputs' "Error")
            raise gr.Error(str(error), duration=None, print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - the page must answer with a message, and the log keeps the trace
            log.exception("edit failed")
            message = f"The edit failed: {type(error).__name__}: {error}"
            raise gr.Error(message, duration=None, print_exception=False) from None

    def upload(self, file, session, face, rois, mode_label, strength, seed):
        """A new photo: check, prepare (encode once) and edit it with the current settings."""
        if not file:
            return (session, gr.skip(), gr.skip(), *([gr.skip()] * 5))

        def load():
            if session is not None:  # a photo that fails to load is not edited in the previous one's place
                session.photos, session.input_path = {}, None
            prepared = self._prepare(file)
            current = self._new_session(session)
            current.photos, current.name = {ALL_FACES: prepared}, _upload_name(file)
            current.input_path = _save(prepared.image, current.folder / "input.png", "PNG", compress_level=1)
            faces_path = _save(pipeline.outlined(prepared), current.folder / "faces.png", "PNG", compress_level=1)
            choices = gr.Dropdown(choices=pipeline.face_choices(prepared), value=ALL_FACES)
            if rois:
                return (
                    current,
                    str(faces_path),
                    choices,
                    *self._edit(current, ALL_FACES, rois, mode_label, strength, seed),
                )
            return current, str(faces_path), choices, *([gr.skip()] * 4), f"Loaded {current.name}: choose a region."

        return self._checked(load)

    def pick_example(self, session, face, rois, mode_label, strength, seed, event: gr.SelectData):
        """A click on an example face loads it like an upload."""
        return self.upload(str(self.examples[event.index]), session, face, rois, mode_label, strength, seed)

    def upload_partner(self, mode: str):
        """The handler for the reference (``swap_style``) or donor (``swap_structure``) image."""

        def handler(file, session, face, rois, mode_label, strength, seed):
            if not file:
                return session, *([gr.skip()] * 5)

            def load():
                if session is not None:  # a failed one is not used in the previous one's place
                    session.partners.pop(mode, None)
                prepared = self._prepare(file, faces="largest")
                current = self._new_session(session)
                current.partners[mode] = prepared
                if MODES[mode_label] != mode or not current.photos:
                    return current, *([gr.skip()] * 4), f"{PARTNER_MODES[mode].capitalize()} loaded."
                return current, *self._edit(current, face, rois, mode_label, strength, seed)

            return self._checked(load)

        return handler

    def edit(self, session, face, rois, mode_label, strength, seed):
        """Edit the session's photo with the current settings (cached codes: at most one decode)."""
        return self._checked(self._edit, session, face, rois, mode_label, strength, seed)

    def change_mode(self, session, face, rois, mode_label, strength, seed):
        """Show the controls of the chosen mode; edit when the photo (and its reference / donor) is there."""
        mode = MODES[mode_label]
        visibility = (
            gr.update(visible=mode == "style"),
            gr.update(visible=mode == "style"),
            gr.update(visible=mode == "style"),
            gr.update(visible=mode == "swap_style"),
            gr.update(visible=mode == "swap_structure"),
        )
        if session is None or not session.photos or not rois:
            return *visibility, *([gr.skip()] * 5)
        if mode in PARTNER_MODES and mode not in session.partners:
            return *visibility, *([gr.skip()] * 4), f"Upload a {PARTNER_MODES[mode]} for '{mode_label}'."
        return *visibility, *self.edit(session, face, rois, mode_label, strength, seed)

    @staticmethod
    def new_seed() -> int:
        """A fresh random seed (the seed box's change then runs the edit)."""
        return random.randrange(2**31)

    # ---- layout ----

    def build(self) -> gr.Blocks:
        """The page's components and events; API names: upload, reference, donor, edit, new_style, mode."""
        rois = list(self.editor.slicing.roi_names)
        with gr.Blocks(title="L2SAE interactive editor", delete_cache=CACHE_CLEANUP) as demo:
            session = gr.State(None, time_to_live=SESSION_TTL_S, delete_callback=lambda s: s and s.close())
            gr.Markdown(
                "# L2SAE interactive editor\n"
                "Upload a face photo or click an example, choose regions, and restyle them: every face found is "
                "aligned, edited inside the regions' mask only, and pasted back at the photo's resolution."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.File(
                        label="Photo (PNG, JPEG or WebP)", file_count="single", type="filepath", elem_id="photo"
                    )
                    examples = gr.Gallery(
                        [str(path) for path in self.examples],
                        label="Example faces (click one)",
                        columns=4,
                        height=150,
                        allow_preview=False,
                        interactive=False,
                        buttons=[],
                        elem_id="examples",
                    )
                    face = gr.Dropdown([ALL_FACES], value=ALL_FACES, label="Face")
                    regions = gr.CheckboxGroup(rois, value=rois[:1], label="Regions")
                    mode = gr.Radio(list(MODES), value="random style", label="Edit")
                    strength = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="Strength", elem_id="strength")
                    with gr.Row():
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                        new_style = gr.Button("New style")
                    reference = gr.File(label="Reference image (its style)", visible=False)
                    donor = gr.File(label="Donor image (its region's structure)", visible=False)
                with gr.Column(scale=2):
                    with gr.Row():
                        input_view = gr.Image(
                            label="Input",
                            type="filepath",
                            format="png",
                            interactive=False,
                            height=IMAGE_HEIGHT,
                            elem_id="input",
                        )
                        mask_view = gr.Image(
                            label="Region mask over the input",
                            type="filepath",
                            interactive=False,
                            height=IMAGE_HEIGHT,
                            elem_id="mask",
                        )
                        result_view = gr.Image(
                            label="Result",
                            type="filepath",
                            format="png",
                            interactive=False,
                            elem_id="result",
                            height=IMAGE_HEIGHT,
                        )
                    comparison = gr.ImageSlider(label="Before | after", type="filepath", format="png")
                    with gr.Row():
                        download = gr.DownloadButton("Download PNG", value=None)
                        status = gr.Markdown("Upload a photo to start.", elem_id="status")

            settings = [face, regions, mode, strength, seed]
            edited = [mask_view, result_view, comparison, download, status]
            editing = {"concurrency_id": EDIT_LOCK, "concurrency_limit": 1}
            loaded = [session, input_view, face, *edited]
            photo.upload(self.upload, [photo, session, *settings], loaded, api_name="upload", **editing)
            examples.select(self.pick_example, [session, *settings], loaded, api_name=False, **editing)
            for partner, partner_mode, name in (
                (reference, "swap_style", "reference"),
                (donor, "swap_structure", "donor"),
            ):
                partner.upload(
                    self.upload_partner(partner_mode),
                    [partner, session, *settings],
                    [session, *edited],
                    api_name=name,
                    **editing,
                )
            mode.change(
                self.change_mode,
                [session, *settings],
                [strength, seed, new_style, reference, donor, *edited],
                api_name="mode",
                **editing,
            )
            new_style.click(self.new_seed, None, seed, api_name="new_style")
            for control in (face, regions, strength, seed):
                control.change(
                    self.edit,
                    [session, *settings],
                    edited,
                    api_name="edit" if control is strength else False,
                    trigger_mode="always_last",
                    **editing,
                )
        return demo
