"""Pretrained metric backbones: where their weight files are looked up, and what happens when they are missing.

Inception (FID) and AlexNet/VGG (LPIPS) weights are read from a path given in the config or from the
torch hub cache (``$TORCH_HOME/hub/checkpoints/``, ``~/.cache/torch/hub/checkpoints/`` by default),
else downloaded. Where none of these works (no network), :class:`MissingWeightsError` says which file
to place where. :func:`optional_metric` applies a metric's ``enabled`` setting (auto, true, false) to that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.error import URLError

import torch

from l2sae.utils.errors import ConfigError

log = logging.getLogger(__name__)
Network = TypeVar("Network")
AUTO = "auto"


def hub_checkpoint_path(filename: str) -> Path:
    """Where torch hub keeps ``filename``: ``$TORCH_HOME/hub/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


class MissingWeightsError(FileNotFoundError):
    """A pretrained metric backbone's weight file is neither configured, cached nor downloadable.

    ``weights_file``: the file's name; ``folder``: the torch hub cache folder it belongs in; ``key``: the
    config key of its path; ``configured``: True when that key names a file that does not exist.
    """

    def __init__(self, weights_file: str, key: str, configured_path: str | Path | None = None) -> None:
        self.weights_file, self.key = weights_file, key
        self.folder = hub_checkpoint_path(weights_file).parent
        self.configured = configured_path is not None
        message = (
            f"the pretrained weights {weights_file} are not on this machine and could not be downloaded. "
            f"Copy {weights_file} into {self.folder}/ (the torch hub cache; set TORCH_HOME to use another cache) "
            f"or set {key}=/path/to/{weights_file}."
        )
        super().__init__(f"{key}={configured_path}: no such file. {message}" if self.configured else message)


def local_weights(filename: str, configured_path: str | Path | None, key: str) -> Path | None:
    """The weight file to load: the configured path (which must exist), else the cached file, else None.

    None means the library will try to download ``filename``; wrap that call in
    :func:`explain_download_failure`.
    """
    if configured_path is not None:
        path = Path(configured_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(filename, key, configured_path)
        return path
    cached = hub_checkpoint_path(filename)
    return cached if cached.is_file() else None


@contextmanager
def explain_download_failure(filename: str, key: str) -> Iterator[None]:
    """Turn a failed download (no network) of ``filename`` into a :class:`MissingWeightsError`."""
    try:
        yield
    except (URLError, ConnectionError, TimeoutError) as error:
        raise MissingWeightsError(filename, key) from error


def check_enabled(value: object, key: str) -> bool | str:
    """A metric's ``enabled`` setting: ``"auto"``, True or False; anything else is a ConfigError naming ``key``."""
    if value is True or value is False or value == AUTO:
        return value
    raise ConfigError(f"{key}: expected auto, true or false, got {value!r}")


def optional_metric(
    name: str, enabled: bool | str, key: str, build: Callable[[], Network]
) -> tuple[Network | None, str | None]:
    """A metric's network built as ``enabled`` (``key``) says, and the report's note when it is not computed.

    - True: ``build()``; its :class:`MissingWeightsError` propagates.
    - False: not built (no warning); the note says so.
    - ``"auto"``: ``build()`` where its weights can be had (configured path, hub cache or a download);
      otherwise None, with one warning naming the file, its folder and ``key=true``. A configured path
      that does not exist stays an error (a typo should not pass for a skipped metric).
    """
    if enabled is False:
        return None, f"{name} not computed ({key}=false)."
    try:
        return build(), None
    except MissingWeightsError as error:
        if enabled != AUTO or error.configured:
            raise
        note = f"{name} skipped: {error.weights_file} not found in {error.folder} and it could not be downloaded."
        log.warning(
            "%s Copy the file there (or set %s=/path/to/%s) to compute %s; %s=true makes this an error, "
            "%s=false silences this warning.",
            note,
            error.key,
            error.weights_file,
            name,
            key,
            key,
        )
        return None, note
