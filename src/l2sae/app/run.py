"""``python app.py``: load the editor named by the config and serve the page until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal

from omegaconf import DictConfig

from l2sae.app.pipeline import UploadLimits
from l2sae.app.server import AppSettings, RunningApp
from l2sae.editing.config import editor_from_config
from l2sae.utils.device import resolve_device
from l2sae.utils.errors import ConfigError

log = logging.getLogger(__name__)


def settings_from_config(cfg: DictConfig) -> AppSettings:
    """The page's settings, checked; errors name the key."""
    for key in ("max_upload_mb", "max_pixels", "num_examples"):
        value = cfg[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < (0 if key == "num_examples" else 1)
        ):
            raise ConfigError(f"{key}: expected a positive number, got {value!r}")
    if cfg.port is not None and not (isinstance(cfg.port, int) and 0 < cfg.port < 65536):
        raise ConfigError(f"port: expected a TCP port (1-65535) or null, got {cfg.port!r}")
    if cfg.examples_dir and not os.path.isdir(cfg.examples_dir):
        raise ConfigError(f"examples_dir: {cfg.examples_dir} is not a folder; give a folder of face images or null")
    return AppSettings(
        host=str(cfg.host),
        port=cfg.port,
        share=bool(cfg.share),
        limits=UploadLimits(max_upload_mb=float(cfg.max_upload_mb), max_pixels=int(cfg.max_pixels)),
        examples_dir=cfg.examples_dir,
        num_examples=int(cfg.num_examples),
    )


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(cfg: DictConfig) -> dict:
    """Serve the page at ``cfg.host:cfg.port`` until interrupted; returns the URL it served."""
    settings = settings_from_config(cfg)
    editor = editor_from_config(cfg, resolve_device(cfg.device))
    stops = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C or kill: stop serving and remove the temporary folder
    previous = [signal.signal(stop, _interrupt) for stop in stops]
    try:
        with RunningApp(editor, settings) as app:
            print(f"L2SAE editor running at {app.url} (Ctrl-C stops it)", flush=True)
            if app.share_url:
                print(f"public share link: {app.share_url}", flush=True)
            app.wait()
    finally:
        for stop, handler in zip(stops, previous):
            signal.signal(stop, handler)
    return {"url": app.url}
