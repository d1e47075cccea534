"""Pretrained metric backbones: what happens when their weight files are missing.

Where the files are looked up and how they are read safely is :mod:`l2sae.utils.pretrained`.
:func:`optional_metric` applies a metric's ``enabled`` setting (auto, true, false) to a missing file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from l2sae.utils.errors import ConfigError
from l2sae.utils.pretrained import MissingWeightsError, hub_checkpoint_path  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
Network = TypeVar("Network")
AUTO = "auto"


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
