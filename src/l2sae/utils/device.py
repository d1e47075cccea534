"""Where networks run: the one place a ``device`` setting is read (the precision: :mod:`l2sae.utils.precision`)."""

from __future__ import annotations

import torch

from l2sae.utils.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (cuda when available), ``cpu``, ``cuda`` or ``cuda:N``; errors name the ``device`` key."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no GPU is available; use device=cpu or device=auto")
    return device
