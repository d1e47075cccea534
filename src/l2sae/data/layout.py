"""The CelebAMask-HQ folder layout, shared by the reader and the synthetic face writer.

```
<root>/
  CelebA-HQ-img/<i>.jpg                                 images (1024 px in the real set; .png accepted)
  CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png  one binary mask per part that is present (512 px)
  CelebA-HQ-to-CelebA-mapping.txt                       "idx orig_idx orig_file" per image
  list_eval_partition.txt                               optional: CelebA's "<orig_file> <0|1|2>"
```
"""

from __future__ import annotations

import os
from pathlib import Path

from l2sae.utils.images import IMAGE_SUFFIXES

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGES_PER_MASK_FOLDER = 2000
README_HINT = "see data/README.md for where to download each dataset and the expected layout"


def mask_path(root: str | os.PathLike, index: int, part: str) -> Path:
    """Path of the mask of ``part`` for image ``index`` (the file exists only when the part is visible)."""
    return Path(root) / MASK_DIR / str(index // IMAGES_PER_MASK_FOLDER) / f"{index:05d}_{part}.png"


def image_path(root: str | os.PathLike, index: int, suffix: str = ".jpg") -> Path:
    return Path(root) / IMAGE_DIR / f"{index}{suffix}"


def check_layout(root: str | os.PathLike) -> Path:
    """Return ``root`` as a Path, or fail naming the first expected folder that is missing."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist; {README_HINT}")
    for folder in (IMAGE_DIR, MASK_DIR):
        if not (root / folder).is_dir():
            raise FileNotFoundError(
                f"{root / folder} is missing: a CelebAMask-HQ root holds {IMAGE_DIR}/<i>.jpg and "
                f"{MASK_DIR}/<i // {IMAGES_PER_MASK_FOLDER}>/<i:05d>_<part>.png; {README_HINT}"
            )
    return root


def indexed_images(root: Path) -> dict[int, os.DirEntry]:
    """Map each image index to its directory entry in ``<root>/CelebA-HQ-img`` (files named ``<i>.<ext>``)."""
    images: dict[int, os.DirEntry] = {}
    with os.scandir(root / IMAGE_DIR) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit() and entry.is_file():
                if int(stem) in images:
                    raise ValueError(
                        f"{root / IMAGE_DIR} holds two images for index {int(stem)} "
                        f"({images[int(stem)].name}, {entry.name}); keep one"
                    )
                images[int(stem)] = entry
    if not images:
        raise FileNotFoundError(f"{root / IMAGE_DIR} holds no images named <i>.jpg or <i>.png; {README_HINT}")
    return dict(sorted(images.items()))
