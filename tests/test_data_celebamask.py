"""CelebAMaskHQ on hand-made trees: samples, region grouping, resizing, flips, bad files, the cache."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from l2sae.data import CelebAMaskHQ
from l2sae.data import celebamask_hq as celebamask_module
from l2sae.data.cache import DEFAULT_CACHE_FOLDER
from l2sae.data.layout import IMAGE_DIR, MAPPING_FILE, MASK_DIR, PARTITION_FILE, mask_path
from l2sae.regions import DEFAULT_REGION_PARTS
from l2sae.utils.errors import ConfigError, ImageFileError

MASK = 16  # masks are drawn at 16 px, images at 64 px; samples are read at 32 px
SIZE = 32
# part -> (rows, cols) of its rectangle on the 16 px mask grid; hair overlaps the top of the skin
PARTS = {
    "skin": (slice(2, 14), slice(2, 14)),
    "hair": (slice(0, 5), slice(0, 16)),
    "l_brow": (slice(5, 6), slice(4, 6)),
    "l_eye": (slice(6, 8), slice(4, 6)),
    "r_eye": (slice(6, 8), slice(9, 12)),  # wider than l_eye: flips are visible
    "nose": (slice(8, 10), slice(7, 9)),
    "u_lip": (slice(11, 12), slice(6, 10)),
    "l_lip": (slice(12, 13), slice(6, 10)),
}
INDICES = (0, 1, 2, 3, 4, 2001)  # 2001 lives in mask folder 1
PARTITION = {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 2001: 2}  # CelebA codes: 0 train, 1 val, 2 test
COLOUR = (200, 40, 120)


def part_mask(part: str) -> np.ndarray:
    mask = np.zeros((MASK, MASK), dtype=bool)
    mask[PARTS[part]] = True
    return mask


def region_at_sample_size(parts, without=()) -> np.ndarray:
    """The expected SIZE x SIZE mask of a region: its parts minus pixels covered by ``without``."""
    mask = np.any([part_mask(p) for p in parts], axis=0) & ~np.any([part_mask(p) for p in without] or [False], axis=0)
    return np.kron(mask, np.ones((SIZE // MASK, SIZE // MASK), dtype=bool))


def save_png(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def make_tree(root: Path) -> Path:
    """Six 64 px faces: 0 all parts (jpg), 1 no lips or mouth, 2 grayscale, 3 palette, 4 RGBA, 2001 plain."""
    (root / IMAGE_DIR).mkdir(parents=True)
    for index in INDICES:
        rgb = Image.new("RGB", (64, 64), COLOUR)
        if index == 0:
            rgb.save(root / IMAGE_DIR / "0.jpg", quality=100)
        elif index == 2:
            save_png(root / IMAGE_DIR / "2.png", Image.new("L", (64, 64), 200))
        elif index == 3:
            palette = Image.new("P", (64, 64), 1)
            palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
            save_png(root / IMAGE_DIR / "3.png", palette)
        elif index == 4:
            rgba = Image.new("RGBA", (64, 64), COLOUR + (255,))
            rgba.paste((0, 0, 0, 0), (0, 0, 64, 32))  # the top half is transparent
            save_png(root / IMAGE_DIR / "4.png", rgba)
        else:
            save_png(root / IMAGE_DIR / f"{index}.png", rgb)
        for part in PARTS:
            if index == 1 and part in ("u_lip", "l_lip"):
                continue  # no lips: an empty region; "mouth" is absent everywhere: a missing part file
            save_png(mask_path(root, index, part), Image.fromarray(part_mask(part).astype(np.uint8) * 255))
    rows = "".join(f"{i} {100 + i} {101 + i:06d}.jpg\n" for i in INDICES)
    (root / MAPPING_FILE).write_text(f"idx orig_idx orig_file\n{rows}")
    (root / PARTITION_FILE).write_text("".join(f"{101 + i:06d}.jpg {PARTITION[i]}\n" for i in INDICES))
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "celebamask")


def dataset(root, split="all", **options):
    return CelebAMaskHQ(
        root, split=split, image_size=SIZE, split_scheme=options.pop("split_scheme", "celeba"), **options
    )


def sample_of(data, index):
    position = [Path(p).stem for p in data.store.paths].index(str(index))
    return data[position]


def test_sample_layout_and_default_regions(tree):
    data = dataset(tree)
    assert len(data) == len(INDICES)
    sample = sample_of(data, 2001)
    assert sample["image"].shape == (3, SIZE, SIZE) and sample["image"].dtype == torch.float32
    assert sample["roi_masks"].shape == (5, SIZE, SIZE)
    assert sample["roi_names"] == ("hair", "skin", "nose", "eyes", "lips_mouth")
    assert sample["path"] == str(tree / IMAGE_DIR / "2001.png")
    assert set(sample["roi_masks"].unique().tolist()) == {0.0, 1.0}
    expected = {
        "hair": region_at_sample_size(["hair"]),
        # hair is painted after skin (CelebAMask-HQ's order), and so are eyes, brows, nose, lips
        "skin": region_at_sample_size(["skin"], without=["hair", "l_brow", "l_eye", "r_eye", "nose", "u_lip", "l_lip"]),
        "nose": region_at_sample_size(["nose"]),
        "eyes": region_at_sample_size(["l_eye", "r_eye"]),  # brows are not part of the default eyes
        "lips_mouth": region_at_sample_size(["u_lip", "l_lip"]),  # the absent mouth file adds nothing
    }
    for row, name in enumerate(sample["roi_names"]):
        assert torch.equal(sample["roi_masks"][row].bool(), torch.from_numpy(expected[name])), name
    expected_colour = torch.tensor(COLOUR, dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(sample["image"], expected_colour[:, None, None].expand(3, SIZE, SIZE))


def test_regions_from_config_in_config_order(tree):
    regions = {"eyes": ["l_eye", "r_eye", "l_brow", "r_brow"], "hair": ["hair"]}
    sample = sample_of(dataset(tree, regions=regions), 0)
    assert sample["roi_names"] == ("eyes", "hair")
    assert torch.equal(
        sample["roi_masks"][0].bool(), torch.from_numpy(region_at_sample_size(["l_eye", "r_eye", "l_brow"]))
    )
    with pytest.raises(ConfigError, match=r"data\.regions\.eyes: unknown part 'pupil'"):
        dataset(tree, regions={"eyes": ["pupil"]})


def test_empty_region_and_missing_part_file(tree):
    sample = sample_of(dataset(tree), 1)  # image 1 has no lip files and no image has a mouth file
    assert sample["roi_masks"][4].sum() == 0
    assert sample["roi_masks"][3].sum() > 0


def test_grayscale_palette_rgba_and_jpeg_become_rgb(tree):
    data = dataset(tree, cache=False)
    gray, palette, rgba, jpeg = (sample_of(data, i)["image"] for i in (2, 3, 4, 0))
    assert torch.allclose(gray, torch.full((3, SIZE, SIZE), 200 / 127.5 - 1))
    assert torch.allclose(palette, (torch.tensor([10.0, 200.0, 30.0]) / 127.5 - 1)[:, None, None].expand(3, SIZE, SIZE))
    assert torch.allclose(rgba[:, : SIZE // 2 - 2], torch.ones(3, SIZE // 2 - 2, SIZE))  # transparent -> white
    assert torch.allclose(rgba[:, SIZE // 2 + 2 :, 0], (torch.tensor(COLOUR) / 127.5 - 1)[:, None])
    assert torch.allclose(jpeg, (torch.tensor(COLOUR) / 127.5 - 1)[:, None, None], atol=0.05)


def test_images_are_antialiased_and_masks_nearest(tmp_path, tree):
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([checker] * 3, axis=-1)).save(tree / IMAGE_DIR / "2001.png")
    stripes = np.zeros((64, 64), dtype=np.uint8)
    stripes[:, np.arange(64) // 2 % 2 == 0] = 255  # 2-px stripes at 64 px: 1-px stripes at 32 px, not blurred
    Image.fromarray(stripes).save(mask_path(tree, 2001, "nose"))
    sample = sample_of(dataset(tree, cache=False), 2001)
    assert sample["image"].abs().max() < 0.1  # a 1-px checkerboard averages to mid grey
    stripes_at_sample_size = torch.from_numpy(np.arange(SIZE) % 2 == 0).float()
    assert torch.equal(
        sample["roi_masks"][2, 16:22], stripes_at_sample_size.expand(6, SIZE)
    )  # rows no later part covers


def test_hflip_flips_image_and_masks_together(tree, monkeypatch):
    regions = {"eyes": ["l_eye", "r_eye"], "hair": ["hair"]}
    plain = sample_of(dataset(tree, regions=regions), 0)
    flipping = dataset(tree, regions=regions, hflip=True)
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor(0.0))  # always flip
    flipped = sample_of(flipping, 0)
    assert torch.equal(flipped["roi_masks"], plain["roi_masks"].flip(-1))
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert not torch.equal(flipped["roi_masks"][0], plain["roi_masks"][0])  # the eyes are not symmetric
    with pytest.raises(ConfigError, match=r"data\.hflip: region 'eyes' holds only one of l_eye/r_eye"):
        dataset(tree, regions={"eyes": ["l_eye"]}, hflip=True)


def test_celeba_splits_follow_the_partition_file(tree):
    paths = {split: [Path(p).stem for p in dataset(tree, split).store.paths] for split in ("train", "val", "test")}
    assert paths == {"train": ["0", "1", "2", "3"], "val": ["4"], "test": ["2001"]}


def test_missing_folders_name_the_folder_and_the_readme(tmp_path, tree):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*data/README\.md"):
        dataset(tmp_path / "nowhere")
    os.rename(tree / MASK_DIR, tree / "masks")
    with pytest.raises(FileNotFoundError, match=rf"{MASK_DIR} is missing.*data/README\.md"):
        dataset(tree)
    os.rename(tree / IMAGE_DIR, tree / "images")
    with pytest.raises(FileNotFoundError, match=rf"{IMAGE_DIR} is missing"):
        dataset(tree)


def test_a_missing_mask_folder_or_an_image_without_masks_is_an_error_not_empty_targets(tree):
    import shutil

    for part in PARTS:  # image 0 loses all its masks: its targets would be all background
        mask_path(tree, 0, part).unlink()
    for cache in (True, False):
        with pytest.raises(FileNotFoundError, match=r"mask-anno/0: no part mask at all for 1 image\(s\), e\.g\. 00000"):
            dataset(tree, cache=cache)
    shutil.rmtree(tree / MASK_DIR / "1")  # the folder of images 2000-3999 (2001 here)
    with pytest.raises(FileNotFoundError, match=r"mask-anno/1: no such folder; .* images 2000-3999 .*02000_skin"):
        dataset(tree)


def test_a_non_square_image_is_refused_naming_it(tree):
    save_png(tree / IMAGE_DIR / "2001.png", Image.new("RGB", (64, 48), COLOUR))
    with pytest.raises(ImageFileError, match=r"2001\.png: 64 x 48 pixels: CelebAMask-HQ images are square"):
        dataset(tree)


def test_missing_partition_file_suggests_other_schemes(tree):
    (tree / PARTITION_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition\.txt is missing.*split_scheme=index"):
        dataset(tree, "train")
    assert len(dataset(tree, "train", split_scheme="index", val_size=1, test_size=1)) == 4


def test_bad_options_fail_naming_the_key(tree):
    with pytest.raises(ConfigError, match=r"data\.split_scheme"):
        dataset(tree, split_scheme="random")
    with pytest.raises(ConfigError, match=r"data\.image_size"):
        CelebAMaskHQ(tree, image_size=0)
    with pytest.raises(ConfigError, match=r"data\.on_bad_file"):
        dataset(tree, on_bad_file="ignore")
    with pytest.raises(ConfigError, match=r"data\.on_bad_file: skip needs data\.cache=true"):
        dataset(tree, on_bad_file="skip", cache=False)
    with pytest.raises(ConfigError, match=r"data\.subset_size"):
        dataset(tree, subset_size=7)


def truncated_png(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_image_is_an_error_naming_the_file(tree, cache):
    (tree / IMAGE_DIR / "3.png").write_bytes(b"not an image")
    with pytest.raises(ImageFileError, match=r"3\.png.*data\.on_bad_file=skip"):
        data = dataset(tree, cache=cache)
        [data[i] for i in range(len(data))]
    assert not (tree / DEFAULT_CACHE_FOLDER).exists() or not any((tree / DEFAULT_CACHE_FOLDER).iterdir())


def test_bad_files_are_skipped_and_counted(tree):
    (tree / IMAGE_DIR / "3.png").write_bytes(b"not an image")
    truncated_png(mask_path(tree, 1, "hair"))
    data = dataset(tree, on_bad_file="skip")
    assert sorted(Path(p).name for p in data.skipped_files) == ["00001_hair.png", "3.png"]
    assert [Path(p).stem for p in data.store.paths] == ["0", "2", "4", "2001"]
    assert len(data) == 4 and data[3]["roi_masks"].shape == (5, SIZE, SIZE)
    assert dataset(tree, on_bad_file="skip").skipped_files == data.skipped_files  # remembered by the cache


def test_a_cache_that_left_files_out_is_refused_under_on_bad_file_error(tree):
    (tree / IMAGE_DIR / "3.png").write_bytes(b"not an image")
    truncated_png(mask_path(tree, 1, "hair"))
    assert len(dataset(tree, on_bad_file="skip")) == 4
    with pytest.raises(ImageFileError) as raised:
        dataset(tree)
    message = str(raised.value)
    assert "data.on_bad_file=skip" in message and "left out 2 file(s)" in message and "3.png" in message
    assert "00001_hair.png" in message and DEFAULT_CACHE_FOLDER in message


def test_a_larger_max_pixels_reads_the_files_a_smaller_one_refused(tree):
    save_png(tree / IMAGE_DIR / "2.png", Image.new("L", (80, 80), 200))  # 6400 pixels
    small = dataset(tree, on_bad_file="skip", max_pixels=5000)
    assert [Path(p).name for p in small.skipped_files] == ["2.png"] and len(small) == 5
    large = dataset(tree, on_bad_file="skip")
    assert large.skipped_files == [] and len(large) == 6
    assert torch.allclose(sample_of(large, 2)["image"], torch.full((3, SIZE, SIZE), 200 / 127.5 - 1))


def test_truncated_mask_is_an_error_naming_it(tree):
    truncated_png(mask_path(tree, 4, "nose"))
    with pytest.raises(ImageFileError, match=r"00004_nose\.png"):
        dataset(tree)


def test_cache_is_read_without_decoding_the_originals(tree, monkeypatch):
    first = dataset(tree, "train")
    reference = [first[i] for i in range(len(first))]
    uncached = dataset(tree, "train", cache=False)
    for cached, decoded in zip(reference, (uncached[i] for i in range(len(uncached))), strict=True):
        assert torch.equal(cached["image"], decoded["image"]) and torch.equal(cached["roi_masks"], decoded["roi_masks"])

    def no_decoding(*args, **kwargs):
        raise AssertionError("an original file was decoded")

    monkeypatch.setattr(celebamask_module, "open_image", no_decoding)
    again = dataset(tree, "train")
    for i, expected in enumerate(reference):
        assert torch.equal(again[i]["image"], expected["image"]) and torch.equal(
            again[i]["roi_masks"], expected["roi_masks"]
        )
    folders = sorted(p.name for p in (tree / DEFAULT_CACHE_FOLDER).iterdir())
    assert len(folders) == 1 and folders[0].startswith("celebamask_hq-train-32px-")  # no temporary folder left
    assert sorted(p.name for p in (tree / DEFAULT_CACHE_FOLDER / folders[0]).iterdir()) == [
        "images.npy",
        "labels.npy",
        "meta.json",
    ]


def test_cache_key_changes_with_size_split_and_files(tree):
    dataset(tree, "train")
    dataset(tree, "val")
    CelebAMaskHQ(tree, "train", image_size=16)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tree / IMAGE_DIR / "1.png")  # a changed file: a new cache
    assert torch.allclose(sample_of(dataset(tree, "train"), 1)["image"][:, 0, 0], torch.tensor([1.0, 2, 3]) / 127.5 - 1)
    assert len(list((tree / DEFAULT_CACHE_FOLDER).iterdir())) == 4


@pytest.mark.parametrize("workers", [0, 2])
def test_building_a_cache_leaves_the_global_random_state_alone(tree, workers):
    """A run that builds its cache must train exactly like one that finds it built."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    dataset(tree, "train", cache_workers=workers)
    assert torch.equal(torch.get_rng_state(), before)


def test_cache_built_by_worker_processes(tree):
    (tree / IMAGE_DIR / "3.png").write_bytes(b"not an image")
    data = dataset(tree, on_bad_file="skip", cache_workers=2)
    assert [Path(p).name for p in data.skipped_files] == ["3.png"] and len(data) == 5
    with pytest.raises(ImageFileError, match=r"3\.png"):
        CelebAMaskHQ(tree, "all", image_size=16, split_scheme="celeba", cache_workers=2)


def test_failed_cache_build_leaves_nothing(tree, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(celebamask_module, "open_image", fail)
    with pytest.raises(KeyboardInterrupt):
        dataset(tree)
    assert list((tree / DEFAULT_CACHE_FOLDER).iterdir()) == []


def test_subset_is_fixed_per_seed(tree):
    first = dataset(tree, subset_size=3, subset_seed=1).store.paths
    assert first == dataset(tree, subset_size=3, subset_seed=1).store.paths
    assert len(first) == 3 and set(first) <= set(dataset(tree).store.paths)
    assert {tuple(dataset(tree, subset_size=3, subset_seed=seed).store.paths) for seed in range(6)} != {tuple(first)}


def test_undecodable_bytes_in_memory_raise_bad_file(tmp_path):
    from l2sae.utils.images import open_image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:30])
    with pytest.raises(ImageFileError, match=r"cut\.png"):
        open_image(tmp_path / "cut.png")


def test_an_edited_mask_file_changes_the_cache(tree):
    """Issue 17.7: the key stamped image files only, so training kept the old labels of an edited mask."""
    before = sample_of(dataset(tree, "all"), 0)["roi_masks"]
    hair = mask_path(tree, 0, "hair")
    save_png(hair, Image.new("L", (64, 64), 0))  # no hair any more
    os.utime(hair, ns=(1, 1))  # even with an old time stamp: the size changed
    after = sample_of(dataset(tree, "all"), 0)["roi_masks"]
    hair_index = list(DEFAULT_REGION_PARTS).index("hair")
    assert before[hair_index].any() and not after[hair_index].any()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "meta"])
def test_a_damaged_cache_names_its_folder_instead_of_being_trained_on(tree, damage):
    dataset(tree, "train")
    (folder,) = (tree / DEFAULT_CACHE_FOLDER).iterdir()
    images = folder / "images.npy"
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "garbage":
        images.write_bytes(b"\x93NUMPY garbage")
    else:
        (folder / "meta.json").write_text('{"paths": ["a"], "skipped": [], "has_labels": true}')  # one row, not 3
    with pytest.raises(ValueError, match=f"{folder.name}: the data cache is damaged .*delete it to rebuild"):
        dataset(tree, "train")
