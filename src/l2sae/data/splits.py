"""Train / val / test splits of CelebAMask-HQ image indices.

Schemes:
- ``celeba``: CelebA's standard partition, looked up through the HQ -> CelebA mapping file
  (24,183 / 2,993 / 2,824 images for the full set).
- ``semanticstylegan``: test = indices 28000-29999, the only real images SemanticStyleGAN never
  trained on; train = indices 0-27999 less the last ``val_size`` of them, which form val.
- ``index``: by sorted index: the last ``test_size`` images are test, the ``val_size`` before them
  val, the rest train. For sets without partition files (e.g. the synthetic faces).
Every scheme assigns each image to at most one split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from l2sae.utils.choices import Choice
from l2sae.utils.errors import ConfigError

# the split schemes (the ``data.split_scheme`` setting; see :func:`split_indices`) and the splits they make
SplitScheme = Choice("SplitScheme", {name: name for name in ("celeba", "semanticstylegan", "index")})
Split = Choice("Split", {name: name for name in ("train", "val", "test", "all")})
CELEBA_PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}
SEMANTICSTYLEGAN_TEST = range(28000, 30000)


def _table(path: Path, what: str, hint: str) -> list[list[str]]:
    """Whitespace- or comma-separated rows of a text file, header lines included."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing; {hint}")
    with open(path) as file:
        return [line.replace(",", " ").split() for line in file if line.strip()]


def read_mapping(path: Path) -> dict[int, str]:
    """CelebA-HQ-to-CelebA-mapping.txt -> {HQ index: CelebA file name}; the header line is skipped."""
    hint = "it ships with CelebAMask-HQ (data/README.md), or set data.split_scheme=index"
    rows = _table(path, "mapping file", hint)
    mapping = {int(row[0]): row[2] for row in rows if len(row) >= 3 and row[0].isdigit()}
    if not mapping:
        raise ValueError(f"{path} has no 'idx orig_idx orig_file' rows; {hint}")
    return mapping


def read_partition(path: Path) -> dict[str, str]:
    """CelebA's list_eval_partition.txt -> {CelebA file name: 'train' | 'val' | 'test'}."""
    hint = "download it from CelebA's Eval folder (data/README.md), or set data.split_scheme=index"
    rows = _table(path, "CelebA partition file", hint)
    partition = {
        row[0]: CELEBA_PARTITION_CODES[row[1]] for row in rows if len(row) == 2 and row[1] in CELEBA_PARTITION_CODES
    }
    if not partition:
        raise ValueError(f"{path} has no '<file> <0|1|2>' rows; {hint}")
    return partition


def celeba_splits(indices: Sequence[int], mapping_file: Path, partition_file: Path) -> dict[str, list[int]]:
    mapping = read_mapping(mapping_file)
    partition = read_partition(partition_file)
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index in indices:
        if index not in mapping:
            raise ValueError(f"image {index} is not listed in {mapping_file}; use the mapping file of this dataset")
        if mapping[index] not in partition:
            raise ValueError(f"{mapping[index]} (image {index}) is not listed in {partition_file}")
        splits[partition[mapping[index]]].append(index)
    return splits


def semanticstylegan_splits(indices: Sequence[int], val_size: int) -> dict[str, list[int]]:
    train = [i for i in indices if i < SEMANTICSTYLEGAN_TEST.start]
    test = [i for i in indices if i in SEMANTICSTYLEGAN_TEST]
    if val_size > len(train):
        raise ConfigError(f"data.val_size: {val_size} is more than the {len(train)} images below index 28000")
    return {"train": train[: len(train) - val_size], "val": train[len(train) - val_size :], "test": test}


def index_splits(indices: Sequence[int], val_size: int, test_size: int) -> dict[str, list[int]]:
    if val_size + test_size >= len(indices):
        raise ConfigError(
            f"data.val_size + data.test_size: {val_size} + {test_size} leave no training image out of {len(indices)}"
        )
    train_end = len(indices) - val_size - test_size
    return {
        "train": list(indices[:train_end]),
        "val": list(indices[train_end : train_end + val_size]),
        "test": list(indices[train_end + val_size :]),
    }


def split_indices(
    indices: Sequence[int],
    split: str,
    scheme: str,
    *,
    val_size: int = 0,
    test_size: int = 0,
    mapping_file: Path | None = None,
    partition_file: Path | None = None,
) -> list[int]:
    """The sorted image indices of ``split`` ('train' | 'val' | 'test' | 'all') under ``scheme``."""
    check_split(split, scheme)
    indices = sorted(indices)
    if split == "all":
        return indices
    if scheme == "celeba":
        splits = celeba_splits(indices, mapping_file, partition_file)
    elif scheme == "semanticstylegan":
        splits = semanticstylegan_splits(indices, val_size)
    else:
        splits = index_splits(indices, val_size, test_size)
    if not splits[split]:
        raise ValueError(
            f"split {split!r} of data.split_scheme={scheme} is empty for these {len(indices)} images"
            + ("; it needs indices 28000-29999 of the full set" if scheme == "semanticstylegan" else "")
            + ("; set data.val_size / data.test_size" if scheme == "index" else "")
        )
    return splits[split]


def check_scheme(scheme: str) -> None:
    SplitScheme.parse(scheme, "data.split_scheme")


def check_split(split: str, scheme: str) -> None:
    check_scheme(scheme)
    Split.parse(split, "split")


def check_sizes(**sizes: int | None) -> None:
    """Each named size must be a non-negative integer (None allowed); the error names ``data.<name>``."""
    for name, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"data.{name}: expected a non-negative integer, got {value!r}")


def sample_subset(indices: Sequence[int], size: int | None, seed: int, key: str = "data.subset_size") -> list[int]:
    """A fixed random subset of ``size`` indices (sorted), or all of them when ``size`` is None; ``key`` names
    the setting in errors."""
    if size is None:
        return list(indices)
    if not 0 < size <= len(indices):
        raise ConfigError(f"{key}: {size} is not between 1 and the split's {len(indices)} images")
    chosen = np.random.default_rng(seed).choice(len(indices), size=size, replace=False)
    return [indices[i] for i in sorted(chosen)]
