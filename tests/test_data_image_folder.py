"""ImageFolder: recursive search, square resize, splits, cache, errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from l2sae.data import ImageFolder
from l2sae.utils.errors import ImageFileError


def make_folder(root: Path) -> Path:
    """Five images in nested folders (png, JPG, jpeg, webp), a hidden folder and a text file."""
    for relative, colour in [
        ("a.png", (255, 0, 0)),
        ("sub/b.JPG", (0, 255, 0)),
        ("sub/deeper/c.jpeg", (0, 0, 255)),
        ("sub/d.webp", (255, 255, 255)),
        ("e.png", (0, 0, 0)),
    ]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 48), colour).save(root / relative, quality=100, lossless=True)
    (root / ".hidden").mkdir()
    Image.new("RGB", (48, 48)).save(root / ".hidden" / "x.png")
    (root / "notes.txt").write_text("not an image")
    return root


def names(data, root):
    return [Path(p).relative_to(root).as_posix() for p in data.store.paths]


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "faces")


def test_finds_images_recursively_in_sorted_order(folder):
    data = ImageFolder(folder, image_size=16)
    assert names(data, folder) == ["a.png", "e.png", "sub/b.JPG", "sub/d.webp", "sub/deeper/c.jpeg"]
    sample = data[0]
    assert set(sample) == {"image", "path"} and sample["image"].shape == (3, 16, 16)
    assert torch.allclose(sample["image"], torch.tensor([1.0, -1.0, -1.0])[:, None, None].expand(3, 16, 16))
    assert torch.allclose(data[3]["image"], torch.ones(3, 16, 16))  # lossless webp


def test_non_square_images_are_centre_cropped(tmp_path):
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 20:60] = 255  # the central square is white, the sides black
    Image.fromarray(image).save(tmp_path / "wide.png")
    sample = ImageFolder(tmp_path, image_size=20)[0]
    assert torch.allclose(sample["image"], torch.ones(3, 20, 20))


def test_index_splits_and_subset(folder):
    sizes = {
        split: len(ImageFolder(folder, 16, split, val_size=2, test_size=1)) for split in ("train", "val", "test", "all")
    }
    assert sizes == {"train": 2, "val": 2, "test": 1, "all": 5}
    val = ImageFolder(folder, 16, "val", val_size=2, test_size=1)
    assert names(val, folder) == ["sub/b.JPG", "sub/d.webp"]
    assert len(ImageFolder(folder, 16, subset_size=3, subset_seed=1)) == 3


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(
        FileNotFoundError, match=r"no images \(\.jpg, \.jpeg, \.png, \.webp\) found under .*empty.*data/README\.md"
    ):
        ImageFolder(tmp_path / "empty", 16)
    with pytest.raises(FileNotFoundError, match=r"missing.*does not exist"):
        ImageFolder(tmp_path / "missing", 16)


def test_bad_image_error_and_skip_with_cache(folder):
    (folder / "sub" / "b.JPG").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageFileError, match=r"b\.JPG"):
        ImageFolder(folder, 16)[2]
    data = ImageFolder(folder, 16, on_bad_file="skip", cache=True)
    assert [Path(p).name for p in data.skipped_files] == ["b.JPG"] and len(data) == 4
    assert torch.allclose(data[2]["image"], torch.ones(3, 16, 16))  # d.webp moved up


def test_the_cache_keeps_max_pixels_and_refuses_its_skipped_files_under_error(folder):
    Image.new("RGB", (64, 64), (0, 255, 0)).save(folder / "sub" / "b.JPG", quality=100)  # 4096 pixels
    small = ImageFolder(folder, 16, on_bad_file="skip", cache=True, max_pixels=3000)
    assert [Path(p).name for p in small.skipped_files] == ["b.JPG"] and len(small) == 4
    assert len(ImageFolder(folder, 16, on_bad_file="skip", cache=True)) == 5
    with pytest.raises(ImageFileError, match=r"b\.JPG: unreadable: the cache .* left out 1 file"):
        ImageFolder(folder, 16, cache=True, max_pixels=3000)


def test_hflip(tmp_path, monkeypatch):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:, :4] = 255
    Image.fromarray(image).save(tmp_path / "left.png")
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor(0.0))
    flipped = ImageFolder(tmp_path, 16, hflip=True)[0]["image"]
    assert torch.equal(flipped, ImageFolder(tmp_path, 16)[0]["image"].flip(-1))
