"""Start and stop the page: a private temporary folder, the example faces, a local server.

Everything the app writes (Gradio's uploads and outputs, each session's files, the example faces)
lives in one temporary folder that :meth:`RunningApp.close` removes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from l2sae.app.pipeline import UploadLimits
from l2sae.data.synthfaces import draw_face
from l2sae.editing import L2SAEEditor
from l2sae.utils.errors import ConfigError
from l2sae.utils.images import list_images

log = logging.getLogger(__name__)

EXAMPLE_SEED = 2026  # synthetic example faces: drawn from a seed no training set uses


@dataclass(frozen=True)
class AppSettings:
    """Where the page listens and what it accepts. ``port`` None: the first free port from 7860 on."""

    host: str = "127.0.0.1"
    port: int | None = 7860
    share: bool = False  # Gradio's public share link (needs the internet): only when asked for
    limits: UploadLimits = field(default_factory=UploadLimits)
    examples_dir: str | None = None  # a folder of further example images
    num_examples: int = 4  # synthetic example faces


def draw_examples(folder: Path, size: int, count: int, seed: int = EXAMPLE_SEED) -> list[Path]:
    """Draw ``count`` synthetic faces of ``size`` px into ``folder`` as PNG files; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, sequence in enumerate(np.random.SeedSequence(seed).spawn(count)):
        image, _ = draw_face(np.random.default_rng(sequence), size)
        path = folder / f"synthetic_face_{index + 1}.png"
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _busy_port(settings: AppSettings) -> str:
    """The message for a server that could not listen (Gradio's OSError "Cannot find empty port ...")."""
    where = f"{settings.port} is" if settings.port is not None else "every port tried from 7860 on is"
    return (
        f"port: {where} in use on {settings.host} (or {settings.host} is not an address of this machine); choose "
        "another with port=N, or port=null for the first free one from 7860"
    )


class RunningApp:
    """A started page: ``url``; ``close()`` stops the server and removes the temporary folder."""

    def __init__(self, editor: L2SAEEditor, settings: AppSettings) -> None:
        from l2sae.app.page import PAGE_CSS, EditorPage  # Gradio (~2 s to import) only where a page starts

        self.workdir = Path(tempfile.mkdtemp(prefix="l2sae-app-"))
        self._previous_temp = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.workdir / "gradio")  # uploads and outputs land in our folder
        try:
            examples = draw_examples(self.workdir / "examples", editor.image_size, settings.num_examples)
            if settings.examples_dir:
                examples += list_images(settings.examples_dir, key="examples_dir")
            self.demo = EditorPage(editor, settings.limits, self.workdir, examples).build()
            self.demo.queue(default_concurrency_limit=1)
            try:
                _, self.url, self.share_url = self.demo.launch(
                    server_name=settings.host,
                    server_port=settings.port,
                    share=settings.share,
                    prevent_thread_lock=True,
                    max_file_size=int(settings.limits.max_upload_mb * 2**20),
                    css=PAGE_CSS,
                    quiet=True,
                )
            except OSError as error:
                if "Cannot find empty port" not in str(error):
                    raise
                raise ConfigError(_busy_port(settings)) from error
            log.info("uploads and results go to %s (removed when the app stops)", self.workdir)
        except BaseException:
            self.close()
            raise

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self.demo.block_thread()

    def close(self) -> None:
        demo = getattr(self, "demo", None)
        if demo is not None:
            demo.close(verbose=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._previous_temp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self._previous_temp

    def __enter__(self) -> RunningApp:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
