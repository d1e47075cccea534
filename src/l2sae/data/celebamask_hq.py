"""CelebAMask-HQ (or a set in its layout, like the synthetic faces) with ROI masks.

Part masks become one label map per image, painted in CelebAMask-HQ's part order (a later part
covers an earlier one, as in the dataset's own label-map script), so a pixel belongs to at most
one part and therefore to at most one region.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from l2sae.data.cache import (
    DEFAULT_CACHE_FOLDER,
    StoredImages,
    check_on_bad_file,
    file_stamp,
    folder_stamps,
    open_store,
)
from l2sae.data.fitting import image_array, mask_array
from l2sae.data.layout import (
    IMAGES_PER_MASK_FOLDER,
    MAPPING_FILE,
    MASK_DIR,
    PARTITION_FILE,
    check_layout,
    indexed_images,
    mask_path,
)
from l2sae.data.splits import check_sizes, check_split, sample_subset, split_indices
from l2sae.regions import CELEBAMASK_PARTS, DEFAULT_REGION_PARTS, validate_region_parts
from l2sae.utils.errors import ConfigError, ImageFileError
from l2sae.utils.images import DEFAULT_MAX_PIXELS, open_image

LEFT_RIGHT_PARTS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))


def check_image_size(image_size: int, key: str = "data.image_size") -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ConfigError(f"{key}: expected an integer of at least 8 pixels, got {image_size!r}")


def check_flip_symmetric(region_parts: Mapping[str, Sequence[str]]) -> None:
    """A horizontal flip swaps left and right parts: each region must hold both or neither."""
    for roi, parts in region_parts.items():
        for left, right in LEFT_RIGHT_PARTS:
            if (left in parts) != (right in parts):
                raise ConfigError(
                    f"data.hflip: region {roi!r} holds only one of {left}/{right}, which a flip would swap; "
                    f"put both in one region (data.regions) or set data.hflip=false"
                )


def region_lookup(region_parts: Mapping[str, Sequence[str]]) -> np.ndarray:
    """R x 19 float32 table: entry [r, label] is 1 when part label ``label`` (0 = background) is in region r."""
    table = np.zeros((len(region_parts), len(CELEBAMASK_PARTS) + 1), dtype=np.float32)
    for row, parts in enumerate(region_parts.values()):
        table[row, [CELEBAMASK_PARTS.index(part) + 1 for part in parts]] = 1.0
    return table


class PartLabelDecoder:
    """(index, image path) -> (image 3 x S x S uint8, part labels S x S uint8). Picklable for workers."""

    def __init__(self, root: Path, image_size: int, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.root, self.image_size, self.max_pixels = root, image_size, max_pixels

    def __call__(self, item: tuple[int, str]) -> tuple[np.ndarray, np.ndarray]:
        index, path = item
        picture = open_image(path, "RGB", self.max_pixels)
        if picture.width != picture.height:  # a centre crop of it would no longer match its square masks
            raise ImageFileError(
                path,
                f"{picture.width} x {picture.height} pixels: CelebAMask-HQ images are square (1024 x 1024), as "
                "their part masks",
                "replace it with the square original",
            )
        image = image_array(picture, self.image_size)
        labels = np.zeros((self.image_size, self.image_size), dtype=np.uint8)
        for label, part in enumerate(CELEBAMASK_PARTS, start=1):
            part_file = mask_path(self.root, index, part)
            if part_file.exists():  # an absent part file is an empty mask
                labels[mask_array(open_image(part_file, "L", self.max_pixels), self.image_size)] = label
        return image, labels


def mask_stamps(root: Path, indices: Sequence[int]) -> list:
    """Name, size and modification time of every mask file of the images ``indices`` (a scan per mask folder),
    so editing, adding or removing a mask changes the cache key like an image does. A mask folder these images
    need that is missing, or an image without a single part mask (the set is incomplete: the training targets
    would be all background), is a FileNotFoundError naming the folder."""
    wanted = {f"{index:05d}" for index in indices}
    folders = sorted({index // IMAGES_PER_MASK_FOLDER for index in indices})
    for folder in folders:
        if not (root / MASK_DIR / str(folder)).is_dir():
            raise FileNotFoundError(
                f"{root / MASK_DIR / str(folder)}: no such folder; it holds the part masks of images "
                f"{folder * IMAGES_PER_MASK_FOLDER}-{(folder + 1) * IMAGES_PER_MASK_FOLDER - 1} (e.g. "
                f"{folder * IMAGES_PER_MASK_FOLDER:05d}_skin.png): unpack CelebAMask-HQ-mask-anno whole (data/README.md)"
            )
    stamps = [
        [folder, *stamp]
        for folder in folders
        for stamp in folder_stamps(root / MASK_DIR / str(folder), lambda name: name.partition("_")[0] in wanted)
    ]
    bare = sorted(wanted - {name.partition("_")[0] for _, name, *_ in stamps})
    if bare:
        folder = int(bare[0]) // IMAGES_PER_MASK_FOLDER
        raise FileNotFoundError(
            f"{root / MASK_DIR / str(folder)}: no part mask at all for {len(bare)} image(s), e.g. {bare[0]} "
            f"(expected {bare[0]}_skin.png, {bare[0]}_hair.png, ...): the mask folders are incomplete; unpack "
            "CelebAMask-HQ-mask-anno whole (data/README.md)"
        )
    return stamps


class CelebAMaskHQ(StoredImages):
    """Faces with ROI masks from a CelebAMask-HQ layout (see ``l2sae.data.layout``).

    A sample is a dict: ``image`` 3 x S x S float in [-1, 1] (antialiased bicubic resize),
    ``roi_masks`` R x S x S float in {0, 1} (nearest resize; regions in ``regions`` order),
    ``roi_names`` (tuple of R names) and ``path`` (the image file).

    ``regions`` maps ROI names to CelebAMask-HQ parts (default ``DEFAULT_REGION_PARTS``).
    ``split`` is 'train' | 'val' | 'test' | 'all' under ``split_scheme`` (see ``l2sae.data.splits``;
    ``val_size`` / ``test_size`` are used by the 'index' and 'semanticstylegan' schemes).
    ``subset_size`` / ``subset_seed`` keep a fixed random subset of the split (``subset_key``: its setting's name).
    ``hflip``: flip image and masks together with probability 1/2.
    ``cache``: decode every image once into ``cache_dir`` (default ``<root>/.l2sae_cache``), using
    ``cache_workers`` processes; ``on_bad_file='skip'`` (which needs the cache) drops unreadable files
    and lists them in ``skipped_files``. ``max_pixels``: files with more pixels are refused as unreadable
    (see :func:`l2sae.utils.images.open_image`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 256,
        regions: Mapping[str, Sequence[str]] | None = None,
        split_scheme: str = "celeba",
        on_bad_file: str = "error",
        *,
        val_size: int = 0,
        test_size: int = 0,
        subset_size: int | None = None,
        subset_seed: int = 0,
        subset_key: str = "data.subset_size",
        partition_file: str | os.PathLike | None = None,
        hflip: bool = False,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        cache_workers: int = 0,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        check_image_size(image_size)
        self.region_parts = validate_region_parts(DEFAULT_REGION_PARTS if regions is None else regions, "data.regions")
        self.roi_names = tuple(self.region_parts)
        if hflip:
            check_flip_symmetric(self.region_parts)
        check_split(split, split_scheme)
        check_sizes(val_size=val_size, test_size=test_size, subset_size=subset_size, cache_workers=cache_workers)
        check_on_bad_file(on_bad_file, cache)
        root = check_layout(root)
        images = indexed_images(root)
        indices = split_indices(
            list(images),
            split,
            split_scheme,
            val_size=val_size,
            test_size=test_size,
            mapping_file=root / MAPPING_FILE,
            partition_file=Path(partition_file) if partition_file else root / PARTITION_FILE,
        )
        indices = sample_subset(indices, subset_size, subset_seed, subset_key)
        items = [(index, images[index].path) for index in indices]
        masks = mask_stamps(root, indices)  # now, cached or not: a missing mask folder fails here
        self.split, self.image_size, self.hflip = split, image_size, hflip
        self.store = open_store(
            name=f"celebamask_hq-{split}",
            decode=PartLabelDecoder(root, image_size, max_pixels),
            items=items,
            paths=[path for _, path in items],
            key=lambda: {
                "root": str(root.resolve()),
                "images": [[images[i].name, *file_stamp(images[i])] for i in indices],
                "masks": masks,
                "max_pixels": max_pixels,  # a file refused under one limit may be read under another
            },
            image_size=image_size,
            with_labels=True,
            cache=cache,
            cache_dir=cache_dir or root / DEFAULT_CACHE_FOLDER,
            on_bad_file=on_bad_file,
            workers=cache_workers,
        )
        self._region_of_label = region_lookup(self.region_parts)

    def __getitem__(self, i: int) -> dict:
        image, labels, path = self.stored(i)
        roi_masks = torch.from_numpy(np.take(self._region_of_label, labels, axis=1))
        if self.hflip and torch.rand(()) < 0.5:
            image, roi_masks = image.flip(-1), roi_masks.flip(-1)
        return {"image": image, "roi_masks": roi_masks, "roi_names": self.roi_names, "path": path}
