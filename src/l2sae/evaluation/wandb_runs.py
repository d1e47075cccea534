"""W&B run folders read on this machine: ``wandb/offline-run-*`` (``WANDB_MODE=offline``) and ``wandb/run-*``.

W&B (0.31) writes a run's config, summary and history only into the run's transaction log
``run-<id>.wandb`` (offline runs get no ``files/config.yaml`` or ``files/wandb-summary.json``; those appear
on W&B's server after ``wandb sync``), and the SDK no longer ships a reader for it. The log is a LevelDB-style
log (the header ``:W&B``, magic 0xBEE1, version 0, then 32 KiB blocks of CRC-checked chunks), each record a
``wandb.proto.wandb_internal_pb2.Record`` protobuf; :func:`read_wandb_run` reads it with those classes of the
installed SDK and stops with a clear error on any other header or a damaged chunk.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
FILE_IDENT, FILE_MAGIC, FILE_VERSION = b":W&B", 0xBEE1, 0
CHUNK_HEADER = struct.Struct("<IHB")  # CRC-32 of type and data, data length, type
BLOCK_SIZE = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """What a W&B run folder records: identity, config, summary (nested keys as dicts) and history rows."""

    folder: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None  # None: no exit record (the run did not finish)


def is_wandb_run(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("run-*.wandb"))


def wandb_run_folders(folder: Path) -> list[Path]:
    """The W&B run folders (``run-<time>-<id>``, ``offline-run-<time>-<id>``; not W&B's ``latest-run`` link) in
    ``folder`` at any depth, oldest first."""
    runs = {
        path.parent for path in folder.rglob("run-*.wandb") if path.parent.name.startswith(("run-", "offline-run-"))
    }
    return sorted(runs, key=lambda path: (path.name.removeprefix("offline-"), str(path)))


def log_chunks(path: Path) -> Iterator[bytes]:
    """The records of a transaction log ``run-<id>.wandb``, as serialised protobufs (those complete so far)."""
    data = path.read_bytes()
    if len(data) < FILE_HEADER.size or FILE_HEADER.unpack_from(data) != (FILE_IDENT, FILE_MAGIC, FILE_VERSION):
        raise ValueError(f"{path}: not a W&B transaction log of a known version (header {data[:7]!r})")
    position, record = FILE_HEADER.size, b""
    while position + CHUNK_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:  # zero padding at the end of a block
            position += left_in_block
            continue
        checksum, length, kind = CHUNK_HEADER.unpack_from(data, position)
        chunk = data[position + CHUNK_HEADER.size : position + CHUNK_HEADER.size + length]
        if kind == 0 and length == 0:  # padding (a block's end) or a run still being written
            position += left_in_block
            continue
        if len(chunk) < length:  # the end of a run still being written
            return
        if checksum != zlib.crc32(chunk, zlib.crc32(bytes([kind]))):
            raise ValueError(f"{path}: damaged record at byte {position}; the run's log is corrupt")
        position += CHUNK_HEADER.size + length
        record = chunk if kind in (FULL, FIRST) else record + chunk
        if kind in (FULL, LAST):
            yield record


def _key(item) -> list[str]:
    """An update item's key path (``key``, or ``nested_key`` for nested values)."""
    return [item.key] if item.key else list(item.nested_key)


def _set(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[path[-1]] = value


def _remove(target: dict, path: list[str]) -> None:
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _apply(target: dict, update_items, remove_items=()) -> None:
    for item in update_items:
        _set(target, _key(item), json.loads(item.value_json))
    for item in remove_items:
        _remove(target, _key(item))


def read_wandb_run(folder: str | Path) -> WandbRun:
    """Replay the transaction log of a W&B run folder (the newest ``run-*.wandb`` in it)."""
    from wandb.proto import wandb_internal_pb2

    folder = Path(folder)
    logs = sorted(folder.glob("run-*.wandb"), key=lambda path: path.stat().st_mtime)
    if not logs:
        raise FileNotFoundError(f"{folder}: no run-*.wandb file; give a W&B run folder (wandb/offline-run-*)")
    run = WandbRun(folder=folder)
    for raw in log_chunks(logs[-1]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            run.run_id, run.name, run.group, run.tags = info.run_id, info.display_name, info.run_group, list(info.tags)
            _apply(run.config, info.config.update, info.config.remove)
            _apply(run.summary, info.summary.update, info.summary.remove)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply(row, record.history.item)
            run.history.append(row)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run
