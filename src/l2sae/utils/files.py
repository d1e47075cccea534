"""Atomic writes: every output is written under a hidden temporary name beside its target, then renamed
into place, so a reader never sees a half-written file (``os.replace`` is atomic on one file system)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from l2sae.utils.errors import ConfigError

TEMPORARY_STEM_CHARS = 40  # of the target's name in its temporary name: recognisable, and short enough for any target


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` (same folder, same file system) for a file or folder being built.

    At most 58 characters whatever the length of ``path``'s name: a target name that the file system accepts
    (255 bytes) always has a temporary name it accepts too.
    """
    path = Path(path)
    return path.with_name(f".{path.name[:TEMPORARY_STEM_CHARS]}.{uuid.uuid4().hex[:12]}.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; when the block succeeds it replaces ``path``, otherwise it
    is removed. The parent folder is created. For writers that want a file name (``torch.save``, ``PIL``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_output_folder(path: str | os.PathLike, key: str = "out") -> Path:
    """Create the output folder ``path`` (and its parents) now and check that files can be written in it, so a
    run fails before any work, naming ``key``, rather than after it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}: {path} is a file, not a folder; give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = temporary_sibling(path / "write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot write into {path} ({error.strerror or error}); choose another folder"
        ) from error
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """Indented, valid JSON with a final newline. NaN and infinities are not JSON: NaN (a missing value) is
    written as null, an infinity (e.g. the PSNR of identical pixels) as the string "inf" or "-inf"."""
    atomic_write_text(path, json.dumps(json_numbers(data), indent=1, allow_nan=False) + "\n")


def json_numbers(data):
    """``data`` (dicts, lists, tuples, numbers, ...) with NaN replaced by None and infinities by "inf"/"-inf"."""
    if isinstance(data, float) and not math.isfinite(data):
        return None if math.isnan(data) else ("inf" if data > 0 else "-inf")
    if isinstance(data, dict):
        return {key: json_numbers(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_numbers(value) for value in data]
    return data


def atomic_symlink(target: str | os.PathLike, link: str | os.PathLike) -> None:
    """Point ``link`` at ``target`` (relative to the link's folder), replacing any previous link atomically."""
    link = Path(link)
    temporary = temporary_sibling(link)
    os.symlink(os.path.relpath(Path(target).resolve(), link.parent.resolve()), temporary)
    try:
        os.replace(temporary, link)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block; other processes (and
    threads) asking for it wait. ``fcntl.flock``: the lock goes with the process if it dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
