"""Baseline folders: both layouts, pairing by stem, missing / extra / ignored files, timing files, resizing."""

import json

import numpy as np
import pytest
import torch
from image_files import truncated_jpeg
from PIL import Image

from l2sae.evaluation.baselines import Pairing, load_image, scan_baseline
from l2sae.utils.errors import ConfigError, ImageFileError

ROIS = ("hair", "eyes", "lips_mouth")
KEY = "baselines.semanticstylegan.dir"


def write_png(path, size=8, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path


def test_nested_and_flat_layouts_pair_by_stem_and_report_missing_extra_ignored(tmp_path):
    root = tmp_path / "ssg"
    write_png(root / "hair" / "0.png")
    write_png(root / "hair" / "1.jpg")
    write_png(root / "eyes" / "0.png")
    write_png(root / "2_lips_mouth.png")  # flat layout, a region name with an underscore
    write_png(root / "999_hair.png")  # an image not in the evaluation set: extra
    write_png(root / "recon" / "0.png")
    write_png(root / "nose" / "0.png")  # a region not evaluated: ignored
    (root / "notes.txt").write_text("hello")  # not an image: ignored
    (root / "hair" / "Thumbs.db").write_text("x")  # ignored
    folder = scan_baseline(root, ROIS, "semanticstylegan", KEY)
    assert set(folder.edits) == {("hair", "0"), ("hair", "1"), ("eyes", "0"), ("lips_mouth", "2"), ("hair", "999")}
    pairing = Pairing(folder)
    found = {(roi, stem): pairing.edit(roi, stem) for stem in ("0", "1", "2") for roi in ROIS}
    assert found[("hair", "1")] == root / "hair" / "1.jpg"
    assert found[("lips_mouth", "2")] == root / "2_lips_mouth.png"
    assert pairing.recon("0") == root / "recon" / "0.png"
    assert pairing.recon("1") is None
    summary = pairing.summary()
    assert summary["missing"] == 5
    assert summary["missing_examples"] == ["lips_mouth/0", "eyes/1", "lips_mouth/1", "hair/2", "eyes/2"]
    assert summary["missing_recons"] == 1
    assert (summary["extra"], summary["extra_examples"]) == (1, ["999_hair.png"])
    assert summary["ignored"] == 3
    assert set(summary["ignored_examples"]) == {"nose", "notes.txt", "hair/Thumbs.db"}
    assert summary["timing_file"] is None


def test_an_edit_given_twice_is_an_error_naming_both_files(tmp_path):
    write_png(tmp_path / "hair" / "0.png")
    write_png(tmp_path / "0_hair.jpg")
    with pytest.raises(ValueError, match=r"0_hair.jpg.*keep one|0.png.*0_hair.jpg"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_a_corrupt_baseline_image_fails_the_scan_before_any_scoring(tmp_path):
    write_png(tmp_path / "hair" / "0.png")
    (tmp_path / "recon").mkdir()
    truncated_jpeg(tmp_path / "recon" / "0.jpg")
    with pytest.raises(ImageFileError, match=r"recon/0\.jpg: not a readable image"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_missing_or_empty_folder_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match=f"{KEY}=.*no such folder"):
        scan_baseline(tmp_path / "absent", ROIS, "x", KEY)
    (tmp_path / "unrelated.png").touch()
    with pytest.raises(ValueError, match=r"no edited images .*<roi>/<stem>.png"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_timing_csv_gives_overall_and_per_region_stats(tmp_path):
    write_png(tmp_path / "hair" / "0.png")
    (tmp_path / "timing.csv").write_text(
        "stem,roi,seconds\n0,hair,1.0\n1,hair,3.0\n0,eyes,2.0\n0,skin,100\n1,nose,100\n"
    )
    folder = scan_baseline(tmp_path, ROIS, "x", KEY)  # skin and nose are not evaluated: not in the overall time
    assert folder.timing["all"].median_s == 2.0 and folder.timing["all"].samples == 3
    assert folder.timing["skin"].median_s == 100.0
    assert folder.timing["hair"].median_s == 2.0 and folder.timing["hair"].max_s == 3.0
    assert folder.timing_file == tmp_path / "timing.csv"
    hair_only = scan_baseline(tmp_path, ("hair",), "x", KEY).timing["all"]
    assert (hair_only.median_s, hair_only.samples) == (2.0, 2)


def test_timing_json_number_or_list(tmp_path):
    write_png(tmp_path / "hair" / "0.png")
    (tmp_path / "timing.json").write_text(json.dumps({"seconds_per_edit": 0.5}))
    assert scan_baseline(tmp_path, ROIS, "x", KEY).timing["all"].median_s == 0.5
    (tmp_path / "timing.json").write_text(json.dumps({"seconds_per_edit": [1, 2, 6]}))
    timing = scan_baseline(tmp_path, ROIS, "x", KEY).timing["all"]
    assert (timing.median_s, timing.min_s, timing.max_s) == (2, 1, 6)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("timing.json", '{"seconds": 1}', "seconds_per_edit"),
        ("timing.json", "not json", "seconds_per_edit"),
        ("timing.csv", "stem,region,time\n0,hair,1\n", "stem,roi,seconds"),
        ("timing.csv", "stem,roi,seconds\n0,hair,fast\n", "stem,roi,seconds"),
        ("timing.csv", "stem,roi,seconds\n", "no timing rows"),
        # issue 17.8: values that would make the report's numbers (and evaluation.json) meaningless or invalid
        ("timing.csv", "stem,roi,seconds\n0,hair,nan\n", "finite numbers >= 0, got nan"),
        ("timing.csv", "stem,roi,seconds\n0,hair,inf\n", "finite numbers >= 0, got inf"),
        ("timing.csv", "stem,roi,seconds\n0,hair,-1\n", "finite numbers >= 0, got -1.0"),
        ("timing.csv", "stem,roi,seconds\n0,hiar,1\n", r"unknown region\(s\) \['hiar'\]"),
        ("timing.json", '{"seconds_per_edit": NaN}', "finite numbers >= 0, got nan"),
        ("timing.json", '{"seconds_per_edit": [1, Infinity]}', "finite numbers >= 0, got inf"),
        ("timing.json", '{"seconds_per_edit": -0.5}', "finite numbers >= 0, got -0.5"),
        ("timing.json", '{"seconds_per_edit": true}', "finite numbers >= 0, got True"),
        ("timing.json", '{"seconds_per_edit": [1, "2"]}', "finite numbers >= 0, got '2'"),
    ],
)
def test_bad_timing_files_name_the_file_and_the_format(tmp_path, name, text, message):
    write_png(tmp_path / "hair" / "0.png")
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"{name}.*{message}"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_non_square_edits_are_refused_naming_them(tmp_path):
    """Issue 17.8: a 128 x 64 copy was centre-cropped and scored against another framing without a note."""
    write_png(tmp_path / "hair" / "0.png", size=16)
    path = tmp_path / "eyes" / "0.png"
    path.parent.mkdir()
    Image.fromarray(np.zeros((64, 128, 3), dtype=np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"1 image\(s\) are not square \(eyes/0.png is 128 x 64\)"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_both_timing_files_are_ambiguous(tmp_path):
    write_png(tmp_path / "hair" / "0.png")
    (tmp_path / "timing.csv").write_text("stem,roi,seconds\n0,hair,1\n")
    (tmp_path / "timing.json").write_text('{"seconds_per_edit": 1}')
    with pytest.raises(ValueError, match="keep one"):
        scan_baseline(tmp_path, ROIS, "x", KEY)


def test_load_image_resizes_to_the_evaluation_size_and_names_bad_files(tmp_path):
    image = load_image(write_png(tmp_path / "big.png", size=32, value=255), size=16)
    assert image.shape == (3, 16, 16)
    assert torch.allclose(image, torch.ones_like(image))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png.*replace or delete"):
        load_image(bad, size=16)
