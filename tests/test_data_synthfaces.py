"""Synthetic faces: the CelebAMask-HQ layout, exact masks, determinism, visible bright regions, ensure_synthfaces."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from l2sae.data import CelebAMaskHQ, ensure_synthfaces, synthfaces
from l2sae.data.layout import IMAGE_DIR, MAPPING_FILE, MASK_DIR, PARTITION_FILE
from l2sae.data.synthfaces import MANIFEST_FILE, MIN_PART_BRIGHTNESS, draw_face, generate
from l2sae.regions import CELEBAMASK_PARTS, DEFAULT_REGION_PARTS

PART_LABEL = {part: label for label, part in enumerate(CELEBAMASK_PARTS, start=1)}


def faces(count, size=64, seed=0):
    return [draw_face(np.random.default_rng(sequence), size) for sequence in np.random.SeedSequence(seed).spawn(count)]


def region_of(labels, parts):
    return np.isin(labels, [PART_LABEL[p] for p in parts])


def test_writes_the_celebamask_layout(tmp_path):
    out = generate(tmp_path / "faces", n=10, size=32, seed=0, partition=True)
    assert sorted(p.name for p in (out / IMAGE_DIR).iterdir()) == sorted(f"{i}.jpg" for i in range(10))
    masks = sorted((out / MASK_DIR / "0").iterdir())
    assert {p.name.split("_", 1)[0] for p in masks} == {f"{i:05d}" for i in range(10)}
    assert {p.stem.split("_", 1)[1] for p in masks} <= set(CELEBAMASK_PARTS)
    mask = np.asarray(Image.open(masks[0]))
    assert mask.shape == (32, 32) and set(np.unique(mask)) == {0, 255}
    lines = (out / MAPPING_FILE).read_text().splitlines()
    assert lines[0].split() == ["idx", "orig_idx", "orig_file"] and lines[3].split() == ["2", "2", "000003.jpg"]
    codes = [line.split()[1] for line in (out / PARTITION_FILE).read_text().splitlines()]
    assert codes == ["0"] * 8 + ["1", "2"]
    assert json.loads((out / MANIFEST_FILE).read_text())["n"] == 10
    sizes = [
        len(CelebAMaskHQ(out, split, image_size=32, split_scheme="celeba", cache=False))
        for split in ("train", "val", "test")
    ]
    assert sizes == [8, 1, 1]


def test_written_masks_are_the_drawn_parts(tmp_path):
    generate(tmp_path / "faces", n=3, size=32, seed=5)
    data = CelebAMaskHQ(tmp_path / "faces", "all", image_size=32, split_scheme="index", cache=False)
    for index, (image, labels) in enumerate(faces(3, size=32, seed=5)):
        sample = data[index]
        for row, parts in enumerate(DEFAULT_REGION_PARTS.values()):
            assert torch.equal(sample["roi_masks"][row].bool(), torch.from_numpy(region_of(labels, parts)))
        error = (sample["image"] - (torch.from_numpy(image).permute(2, 0, 1) * 2 - 1)).abs()
        assert error.mean() < 0.03 and error.max() < 0.25  # JPEG, quality 95


def test_deterministic_per_seed_and_independent_of_n(tmp_path):
    generate(tmp_path / "a", n=3, size=32, seed=0)
    generate(tmp_path / "b", n=5, size=32, seed=0)
    generate(tmp_path / "c", n=3, size=32, seed=1)
    files = [p.relative_to(tmp_path / "a") for p in sorted((tmp_path / "a").rglob("*.*g"))]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / IMAGE_DIR / "0.jpg").read_bytes() != (tmp_path / "c" / IMAGE_DIR / "0.jpg").read_bytes()


def test_every_region_is_visible_bright_and_distinct():
    for image, labels in faces(40):
        assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
        assert image.mean(axis=-1)[labels > 0].min() >= MIN_PART_BRIGHTNESS - 1e-6  # nothing near black
        means = {}
        for name, parts in DEFAULT_REGION_PARTS.items():
            region = region_of(labels, parts)
            assert region.sum() >= 6, name  # at least a few pixels even at 64 px
            means[name] = image[region].mean(axis=0)
        assert np.abs(means["hair"] - means["skin"]).max() > 0.04
        assert np.abs(means["nose"] - means["skin"]).max() > 0.03
        assert np.abs(means["lips_mouth"] - means["skin"]).max() > 0.05
        assert labels[region_of(labels, ["l_eye"])].size and labels[region_of(labels, ["r_eye"])].size


def test_faces_vary():
    drawn = faces(12)
    hair = np.array([image[region_of(labels, ["hair"])].mean(axis=0) for image, labels in drawn])
    hair_area = np.array([region_of(labels, ["hair"]).mean() for _, labels in drawn])
    skin = np.array([image[region_of(labels, ["skin"])].mean(axis=0) for image, labels in drawn])
    assert hair.std(axis=0).max() > 0.1 and skin.std(axis=0).max() > 0.1 and hair_area.std() > 0.03


def test_ensure_generates_only_when_missing_or_changed(tmp_path, monkeypatch):
    root = tmp_path / "synthfaces"
    ensure_synthfaces(root, n=4, size=16, seed=0)
    real_generate = synthfaces.generate

    def fail(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(synthfaces, "generate", fail)
    assert ensure_synthfaces(root, n=4, size=16, seed=0) == root
    monkeypatch.setattr(synthfaces, "generate", real_generate)
    (root / ".l2sae_cache").mkdir()  # a cache of the old set goes with it
    ensure_synthfaces(root, n=2, size=16, seed=0)
    assert sorted(p.name for p in (root / IMAGE_DIR).iterdir()) == ["0.jpg", "1.jpg"]
    assert not (root / ".l2sae_cache").exists()
    # no temporary folders left (the lock file that runs preparing the set take turns with stays)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synthfaces.lock", "synthfaces"]


def test_incomplete_set_is_redrawn(tmp_path):
    root = generate(tmp_path / "synthfaces", n=3, size=16, seed=0)
    (root / MANIFEST_FILE).unlink()  # as if interrupted before the end: not ours to overwrite blindly
    with pytest.raises(FileExistsError, match=r"holds no synthfaces\.json"):
        ensure_synthfaces(root, n=3, size=16, seed=0)
    (root / MANIFEST_FILE).write_text("{}")  # a manifest of other settings: redrawn
    ensure_synthfaces(root, n=3, size=16, seed=0)
    assert json.loads((root / MANIFEST_FILE).read_text())["size"] == 16


def test_foreign_folders_are_not_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"not empty"):
        generate(tmp_path, n=1, size=16)
    with pytest.raises(FileExistsError, match=r"not empty"):
        ensure_synthfaces(tmp_path, n=1, size=16)
    assert (tmp_path / "mine.txt").read_text() == "keep"
    with pytest.raises(ValueError, match=r"n >= 1"):
        generate(tmp_path / "new", n=0, size=16)


def test_command_line(tmp_path, capsys):
    synthfaces.main(["--out", str(tmp_path / "cli"), "--n", "2", "--size", "16", "--seed", "3"])
    assert "wrote 2 faces" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / MANIFEST_FILE).read_text())["seed"] == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        synthfaces.main(["--out", str(tmp_path / "other"), "--n", "2"])
    assert exit_info.value.code == 2 and "holds no synthfaces.json" in capsys.readouterr().err


def test_runs_preparing_the_same_set_at_once_take_turns(tmp_path, monkeypatch):
    """Issue 17.13: two runs drew the set at once and the second swap moved the first run's folder away."""
    import threading
    import time

    draws = []
    real_generate = generate

    def slow_generate(*args, **kwargs):
        draws.append(args[0])
        time.sleep(0.3)  # widen the window in which a second run would start drawing too
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(synthfaces, "generate", slow_generate)
    root = tmp_path / "faces"
    errors = []

    def prepare():
        try:
            ensure_synthfaces(root, n=4, size=32, seed=1)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    runs = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert errors == [] and len(draws) == 1  # the second run waited and found the set complete
    assert json.loads((root / MANIFEST_FILE).read_text())["n"] == 4
    assert len(list((root / IMAGE_DIR).iterdir())) == 4
