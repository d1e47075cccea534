"""Pretrained metric backbones: where their weight files are looked up, and the error when they are missing.

Inception (FID) and AlexNet/VGG (LPIPS) weights are read from the torch hub cache
(``$TORCH_HOME/hub/checkpoints/``, ``~/.cache/torch/hub/checkpoints/`` by default) or from a
path given in the config. Where neither has the file and it cannot be downloaded (no network),
:class:`MissingWeightsError` says which file to place where.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

import torch


class MissingWeightsError(FileNotFoundError):
    """A pretrained metric backbone's weight file is neither cached, configured nor downloadable."""


def hub_checkpoint_path(filename: str) -> Path:
    """Where torch hub keeps ``filename``: ``$TORCH_HOME/hub/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def missing_weights_message(filename: str, key: str) -> str:
    return (
        f"the pretrained weights {filename} are not on this machine and could not be downloaded. "
        f"Copy {filename} into {hub_checkpoint_path(filename).parent}/ (the torch hub cache; "
        f"set TORCH_HOME to use another cache) or set {key}=/path/to/{filename}."
    )


def local_weights(filename: str, configured_path: str | Path | None, key: str) -> Path | None:
    """The weight file to load: the configured path (which must exist), else the cached file, else None.

    None means the library will try to download ``filename``; wrap that call in
    :func:`explain_download_failure`.
    """
    if configured_path is not None:
        path = Path(configured_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"{key}={configured_path}: no such file. " + missing_weights_message(filename, key)
            )
        return path
    cached = hub_checkpoint_path(filename)
    return cached if cached.is_file() else None


@contextmanager
def explain_download_failure(filename: str, key: str) -> Iterator[None]:
    """Turn a failed download (no network) of ``filename`` into a :class:`MissingWeightsError`."""
    try:
        yield
    except (URLError, ConnectionError, TimeoutError) as error:
        raise MissingWeightsError(missing_weights_message(filename, key)) from error
