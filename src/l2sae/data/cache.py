"""Resized uint8 arrays of a dataset split, decoded once and kept in a cache folder.

A cache folder holds ``images.npy`` (N x 3 x S x S uint8), optionally ``labels.npy``
(N x S x S uint8 part-label maps) and ``meta.json`` (the sample paths and the files skipped as
unreadable). It is built in a temporary folder and renamed into place, so a folder that exists
is complete. Its name carries a hash of everything it was built from (file names, sizes and
modification times of the images and of the mask files, the resolution, ``max_pixels``); a changed
dataset gets a new folder. An existing folder is checked against its ``meta.json`` before use (a
folder that left files out fails under ``on_bad_file="error"``, naming them). The arrays are
memory-mapped, so an epoch reads S x S pixels per sample instead of decoding the originals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from l2sae.utils.choices import Choice
from l2sae.utils.errors import ConfigError, ImageFileError
from l2sae.utils.files import atomic_write_json, temporary_sibling
from l2sae.utils.images import to_unit_range

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_CACHE_FOLDER = ".l2sae_cache"  # hidden, so image folder scans skip it

# decode(item) -> (image 3 x S x S uint8, labels S x S uint8 or None); raises ImageFileError
Decoder = Callable[[Any], tuple[np.ndarray, "np.ndarray | None"]]
BAD_FILE_FIX = "replace or delete the file, or set data.on_bad_file=skip to drop such samples"
_LISTED = 5  # skipped files named in an error


def decode_sample(decode: Decoder, item) -> tuple[np.ndarray, np.ndarray | None]:
    """``decode(item)``; an unreadable file's error says how to skip such samples."""
    try:
        return decode(item)
    except ImageFileError as error:
        raise ImageFileError(error.path, error.problem, BAD_FILE_FIX) from error


class DecodedStore:
    """Decodes each sample on demand (no cache). ``get(i)`` -> (image, labels or None, path)."""

    def __init__(self, decode: Decoder, items: Sequence, paths: Sequence[str]):
        self.decode, self.items, self.paths = decode, list(items), list(paths)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        image, labels = decode_sample(self.decode, self.items[i])
        return image, labels, self.paths[i]


class CachedStore:
    """Memory-mapped arrays of a cache folder; each process opens its own maps on first use.

    The folder is checked against its ``meta.json`` first (array shapes, types and file lengths for
    ``image_size``): a truncated or foreign cache fails, naming the folder, instead of being trained on.
    """

    def __init__(self, folder: Path, image_size: int):
        self.folder = folder
        try:
            meta = json.loads((folder / "meta.json").read_text())
            self.paths: list[str] = list(meta["paths"])
            self.skipped: list[str] = list(meta["skipped"])
            self._has_labels = bool(meta["has_labels"])
            rows = len(self.paths) + len(self.skipped)  # a row per item; skipped files' rows stay unused
            self._check_array("images.npy", (rows, 3, image_size, image_size))
            if self._has_labels:
                self._check_array("labels.npy", (rows, image_size, image_size))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{folder}: the data cache is damaged ({error}); delete it to rebuild") from error
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = None

    def _check_array(self, name: str, shape: tuple[int, ...]) -> None:
        array = np.load(self.folder / name, mmap_mode="r")  # reads the header; a short file fails to map
        if array.dtype != np.uint8 or array.shape != shape:
            raise ValueError(f"{name} holds {array.dtype} {array.shape}, expected uint8 {shape}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}  # workers map the files themselves

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        if self._arrays is None:
            images = np.load(self.folder / "images.npy", mmap_mode="r")
            labels = np.load(self.folder / "labels.npy", mmap_mode="r") if self._has_labels else None
            self._arrays = images, labels
        images, labels = self._arrays
        return np.array(images[i]), None if labels is None else np.array(labels[i]), self.paths[i]


def file_stamp(path: str | os.PathLike | os.DirEntry) -> tuple[int, int]:
    """(size, modification time in ns) of a file: a changed file changes the cache key."""
    stat = path.stat() if isinstance(path, os.DirEntry) else os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def folder_stamps(folder: str | os.PathLike, wanted: Callable[[str], bool] = lambda name: True) -> list:
    """``[name, size, mtime_ns]`` of the files in ``folder`` whose names are ``wanted`` (sorted): one directory
    scan, so a cache key can cover many small files (masks) cheaply."""
    with os.scandir(folder) as entries:
        return sorted([entry.name, *file_stamp(entry)] for entry in entries if wanted(entry.name))


def cache_folder(cache_dir: str | os.PathLike, name: str, image_size: int, key: Any) -> Path:
    """``<cache_dir>/<name>-<S>px-<hash of key>``; ``key`` is any JSON-serialisable description."""
    text = json.dumps({"version": CACHE_VERSION, "size": image_size, "key": key}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}-{image_size}px-{digest}"


class _DecodeJobs(Dataset):
    """Decoding as a Dataset, so a DataLoader's workers can build the cache in parallel."""

    def __init__(self, decode: Decoder, items: Sequence):
        self.decode, self.items = decode, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:
            return decode_sample(self.decode, self.items[i])
        except ImageFileError as error:
            return error


def _keep(result):
    return result


def build_cache(
    folder: Path,
    decode: Decoder,
    items: Sequence,
    paths: Sequence[str],
    image_size: int,
    with_labels: bool,
    on_bad_file: str = "error",
    workers: int = 0,
) -> CachedStore:
    """Decode every item into ``folder`` (unless it exists) and return the store reading it.

    Unreadable files raise :class:`ImageFileError` (``on_bad_file="error"``) or are left out and
    listed in ``store.skipped`` (``"skip"``); so do the files an existing folder left out when it was built.
    """
    if folder.is_dir():
        store = CachedStore(folder, image_size)
        if store.skipped and on_bad_file == "error":
            listed = ", ".join(store.skipped[:_LISTED]) + (", ..." if len(store.skipped) > _LISTED else "")
            raise ImageFileError(
                store.skipped[0],
                f"unreadable: the cache {folder} was built with data.on_bad_file=skip and left out "
                f"{len(store.skipped)} file(s) ({listed})",
                BAD_FILE_FIX,
            )
        return store
    try:
        temp = temporary_sibling(folder)
        temp.mkdir(parents=True)
    except OSError as error:
        raise OSError(
            f"cannot write the data cache in {folder.parent} ({error}); "
            f"set data.cache_dir to a writable folder or data.cache=false"
        ) from error
    try:
        _fill(temp, decode, items, paths, image_size, with_labels, on_bad_file, workers, desc=folder.name)
        try:
            os.replace(temp, folder)
        except OSError:
            if not folder.is_dir():  # anything but "another process finished first"
                raise
            shutil.rmtree(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return CachedStore(folder, image_size)


def _fill(temp: Path, decode, items, paths, image_size, with_labels, on_bad_file, workers, desc) -> None:
    count, size = len(items), image_size
    images = np.lib.format.open_memmap(temp / "images.npy", mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
    labels = None
    if with_labels:
        labels = np.lib.format.open_memmap(temp / "labels.npy", mode="w+", dtype=np.uint8, shape=(count, size, size))
    kept_paths: list[str] = []
    skipped: list[str] = []
    log.info("decoding %d images into the cache %s (once)", count, temp.parent)
    # an own generator: the loader's worker seed must not come from the global RNG, or building a cache
    # would change the training run that follows it (runs would differ by whether the cache existed)
    loader = DataLoader(
        _DecodeJobs(decode, items), batch_size=None, num_workers=workers, collate_fn=_keep, generator=torch.Generator()
    )
    for path, result in tqdm(zip(paths, loader, strict=True), total=count, desc=f"caching {desc}", disable=None):
        if isinstance(result, ImageFileError):
            if on_bad_file == "error":
                raise result
            skipped.append(result.path)
            continue
        image, label_map = result
        images[len(kept_paths)] = image
        if labels is not None:
            labels[len(kept_paths)] = label_map
        kept_paths.append(path)
    if not kept_paths:
        raise ValueError(f"none of the {count} images could be read (first: {skipped[:1]}); check the dataset files")
    for array in (images, labels):
        if array is not None:
            array.flush()
    # rows past len(kept_paths) (one per skipped file) stay unused; meta.json is written last
    atomic_write_json(temp / "meta.json", {"paths": kept_paths, "skipped": skipped, "has_labels": with_labels})
    if skipped:
        log.warning("skipped %d unreadable file(s), e.g. %s", len(skipped), skipped[0])


class OnBadFile(Choice):
    """What an unreadable file does (the ``data.on_bad_file`` setting): stop with an error, or be left out."""

    error = "error"
    skip = "skip"


def check_on_bad_file(on_bad_file: str, cache: bool) -> None:
    if OnBadFile.parse(on_bad_file, "data.on_bad_file") == OnBadFile.skip and not cache:
        raise ConfigError(
            "data.on_bad_file: skip needs data.cache=true (unreadable files are found and dropped "
            "while the cache is built)"
        )


def open_store(
    *,
    name: str,
    decode: Decoder,
    items: Sequence,
    paths: Sequence[str],
    key: Callable[[], Any],
    image_size: int,
    with_labels: bool,
    cache: bool,
    cache_dir: str | os.PathLike,
    on_bad_file: str,
    workers: int,
) -> DecodedStore | CachedStore:
    """The cache folder for ``key()`` (built on first use) when ``cache``, else on-demand decoding;
    ``on_bad_file`` as the dataset checked it (:func:`check_on_bad_file`)."""
    if not cache:
        return DecodedStore(decode, items, paths)
    folder = cache_folder(cache_dir, name, image_size, key())
    return build_cache(folder, decode, items, paths, image_size, with_labels, on_bad_file, workers)


class StoredImages(Dataset):
    """What the datasets over an image store (``self.store``, from :func:`open_store`) share: their length, the
    files they left out, and a stored image as (3 x S x S float in [-1, 1], S x S labels or None, path)."""

    store: DecodedStore | CachedStore

    @property
    def skipped_files(self) -> list[str]:
        """Files left out as unreadable (``on_bad_file='skip'``)."""
        return self.store.skipped

    def __len__(self) -> int:
        return len(self.store)

    def stored(self, i: int) -> tuple[torch.Tensor, np.ndarray | None, str]:
        image, labels, path = self.store.get(i)
        return to_unit_range(image), labels, path
