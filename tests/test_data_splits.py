"""Split schemes: sizes, disjointness, partition files, subsets."""

import numpy as np
import pytest

from l2sae.data.splits import read_mapping, read_partition, sample_subset, split_indices
from l2sae.utils.errors import ConfigError


def fake_celeba_files(folder, count=40, seed=0):
    """A mapping of ``count`` HQ images onto scattered CelebA files and a CelebA-style partition of them."""
    rng = np.random.default_rng(seed)
    originals = rng.choice(150000, size=count, replace=False)
    codes = rng.integers(0, 3, size=count)
    mapping = folder / "mapping.txt"
    mapping.write_text(
        "idx orig_idx orig_file\n" + "".join(f"{i} {o} {o + 1:06d}.jpg\n" for i, o in enumerate(originals))
    )
    partition = folder / "partition.txt"
    # CelebA lists every one of its files; include some that no HQ image maps to
    others = [f"{o + 1:06d}.jpg {o % 3}\n" for o in range(150000, 150010)]
    partition.write_text(
        "".join(f"{o + 1:06d}.jpg {c}\n" for o, c in zip(originals, codes, strict=True)) + "".join(others)
    )
    expected = {
        name: [i for i in range(count) if codes[i] == code] for code, name in enumerate(("train", "val", "test"))
    }
    return mapping, partition, expected


def all_splits(indices, scheme, **options):
    return {split: split_indices(indices, split, scheme, **options) for split in ("train", "val", "test")}


def test_celeba_scheme_sizes_and_disjointness(tmp_path):
    mapping, partition, expected = fake_celeba_files(tmp_path)
    splits = all_splits(range(40), "celeba", mapping_file=mapping, partition_file=partition)
    assert splits == expected
    assert sorted(sum(splits.values(), [])) == list(range(40))


def test_partition_and_mapping_parsing_accept_headers_and_commas(tmp_path):
    (tmp_path / "p.csv").write_text("image_id,partition\n000001.jpg,0\n000002.jpg,2\n")
    assert read_partition(tmp_path / "p.csv") == {"000001.jpg": "train", "000002.jpg": "test"}
    (tmp_path / "m.txt").write_text("idx orig_idx orig_file\n0  5  000006.jpg\n1 7 000008.jpg\n")
    assert read_mapping(tmp_path / "m.txt") == {0: "000006.jpg", 1: "000008.jpg"}
    (tmp_path / "empty.txt").write_text("nothing here\n")
    with pytest.raises(ValueError, match=r"empty\.txt has no"):
        read_partition(tmp_path / "empty.txt")


def test_celeba_scheme_unmapped_image_is_an_error(tmp_path):
    mapping, partition, _ = fake_celeba_files(tmp_path, count=5)
    with pytest.raises(ValueError, match=r"image 7 is not listed in .*mapping\.txt"):
        split_indices([0, 7], "train", "celeba", mapping_file=mapping, partition_file=partition)


def test_semanticstylegan_scheme():
    splits = all_splits(range(30000), "semanticstylegan", val_size=500)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [27500, 500, 2000]
    assert splits["test"] == list(range(28000, 30000)) and max(splits["val"]) == 27999
    assert set(splits["train"]).isdisjoint(splits["val"])
    with pytest.raises(ValueError, match=r"split 'test' .* is empty.*28000-29999"):
        split_indices(range(800), "test", "semanticstylegan")


def test_index_scheme_and_all():
    splits = all_splits([5, 1, 3, 2, 4, 0, 9, 8], "index", val_size=2, test_size=3)
    assert splits == {"train": [0, 1, 2], "val": [3, 4], "test": [5, 8, 9]}
    assert split_indices([2, 1], "all", "index") == [1, 2]
    with pytest.raises(ConfigError, match=r"data\.val_size \+ data\.test_size"):
        split_indices(range(5), "train", "index", val_size=2, test_size=3)
    with pytest.raises(ValueError, match=r"split 'val' .* is empty.*data\.val_size"):
        split_indices(range(5), "val", "index", val_size=0, test_size=1)
    with pytest.raises(ConfigError, match=r"split: expected one of train, val, test, all, got 'dev'"):
        split_indices(range(5), "dev", "index")


def test_subset_is_sorted_fixed_and_bounded():
    indices = list(range(100, 200))
    subset = sample_subset(indices, 10, seed=3)
    assert subset == sorted(subset) and len(set(subset)) == 10 and set(subset) <= set(indices)
    assert subset == sample_subset(indices, 10, seed=3) != sample_subset(indices, 10, seed=4)
    assert sample_subset(indices, None, seed=0) == indices
    with pytest.raises(ConfigError, match=r"data\.subset_size: 101"):
        sample_subset(indices, 101, seed=0)
