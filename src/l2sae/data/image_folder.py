"""Any folder of face images (FFHQ, ...), searched recursively, for training the SMN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from l2sae.data.cache import DEFAULT_CACHE_FOLDER, StoredImages, check_on_bad_file, file_stamp, open_store
from l2sae.data.celebamask_hq import check_image_size
from l2sae.data.fitting import image_array
from l2sae.data.layout import README_HINT
from l2sae.data.splits import check_sizes, check_split, sample_subset, split_indices
from l2sae.utils.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, is_image_file, open_image


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (hidden files and folders skipped), sorted by relative path."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [path for path in (Path(folder, name) for name in files) if is_image_file(path)]
    return sorted(found, key=lambda path: path.relative_to(root).parts)


class _ImageDecoder:
    """path -> (image 3 x S x S uint8, None). Picklable for workers."""

    def __init__(self, image_size: int, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.image_size, self.max_pixels = image_size, max_pixels

    def __call__(self, path: str) -> tuple[np.ndarray, None]:
        return image_array(open_image(path, "RGB", self.max_pixels), self.image_size), None


class ImageFolder(StoredImages):
    """Images under ``root`` (recursive), square-cropped and resized to ``image_size``.

    A sample is ``{"image": 3 x S x S float in [-1, 1], "path": str}``. ``split`` is 'all' or
    'train' | 'val' | 'test' of the 'index' scheme over the sorted files (``val_size``, ``test_size``).
    ``subset_size``/``subset_seed``, ``hflip``, ``cache``/``cache_dir``/``cache_workers`` and
    ``on_bad_file``, ``max_pixels`` work as in :class:`~l2sae.data.CelebAMaskHQ`; the cache is off by default
    because at full resolution it would be as large as the decoded originals.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        split: str = "all",
        on_bad_file: str = "error",
        *,
        val_size: int = 0,
        test_size: int = 0,
        subset_size: int | None = None,
        subset_seed: int = 0,
        subset_key: str = "data.subset_size",
        hflip: bool = False,
        cache: bool = False,
        cache_dir: str | os.PathLike | None = None,
        cache_workers: int = 0,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        check_image_size(image_size)
        check_split(split, "index")
        check_sizes(val_size=val_size, test_size=test_size, subset_size=subset_size, cache_workers=cache_workers)
        check_on_bad_file(on_bad_file, cache)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist; {README_HINT}")
        files = find_images(root)
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {root}; put the images there "
                f"(sub-folders are searched) or fix data.root; {README_HINT}"
            )
        positions = split_indices(range(len(files)), split, "index", val_size=val_size, test_size=test_size)
        paths = [str(files[i]) for i in sample_subset(positions, subset_size, subset_seed, subset_key)]
        self.split, self.image_size, self.hflip = split, image_size, hflip
        self.store = open_store(
            name=f"image_folder-{split}",
            decode=_ImageDecoder(image_size, max_pixels),
            items=paths,
            paths=paths,
            key=lambda: {
                "root": str(root.resolve()),
                "images": [[path, *file_stamp(path)] for path in paths],
                "max_pixels": max_pixels,  # a file refused under one limit may be read under another
            },
            image_size=image_size,
            with_labels=False,
            cache=cache,
            cache_dir=cache_dir or root / DEFAULT_CACHE_FOLDER,
            on_bad_file=on_bad_file,
            workers=cache_workers,
        )

    def __getitem__(self, i: int) -> dict:
        image, _, path = self.stored(i)
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {"image": image, "path": path}
