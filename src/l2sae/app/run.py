"""``python app.py``: load the editor named by the config and serve the page until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from l2sae.app.pipeline import UploadLimits
from l2sae.app.server import AppSettings, RunningApp
from l2sae.editing.config import EditorConfig, editor_from_config
from l2sae.utils.device import resolve_device
from l2sae.utils.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class AppConfig(EditorConfig):
    """The schema of ``conf/app.yaml`` (its defaults and comments are there): types and closed choices."""

    task_name: str
    host: str
    port: int | None
    share: bool
    max_upload_mb: float
    max_pixels: int
    examples_dir: str | None
    num_examples: int
    paths: dict[str, Any]


ConfigStore.instance().store(name="app_schema", node=AppConfig)


def settings_from_config(cfg: DictConfig) -> AppSettings:
    """The page's settings, their meaning checked (their types: :class:`AppConfig`); errors name the key."""
    if not cfg.max_upload_mb > 0:
        raise ConfigError(
            f"max_upload_mb: expected a positive number of MiB (e.g. 0.5 or 20), got {cfg.max_upload_mb!r}"
        )
    for key, least, what in (("max_pixels", 1, "a positive"), ("num_examples", 0, "a non-negative")):
        if cfg[key] < least:
            raise ConfigError(f"{key}: expected {what} integer, got {cfg[key]!r}")
    if cfg.port is not None and not 0 < cfg.port < 65536:
        raise ConfigError(f"port: expected a TCP port (1-65535) or null, got {cfg.port!r}")
    if cfg.examples_dir and not os.path.isdir(cfg.examples_dir):
        raise ConfigError(f"examples_dir: {cfg.examples_dir} is not a folder; give a folder of face images or null")
    return AppSettings(
        host=str(cfg.host),
        port=cfg.port,
        share=cfg.share,
        limits=UploadLimits(max_upload_mb=cfg.max_upload_mb, max_pixels=cfg.max_pixels),
        examples_dir=cfg.examples_dir,
        num_examples=cfg.num_examples,
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
