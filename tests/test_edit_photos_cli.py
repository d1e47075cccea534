"""``edit.py`` on photos (align=auto): a folder of good and bad photos, sidecars, grids, swaps, messages."""

import json

import numpy as np
import pytest
from edit_helpers import edit_config
from hydra.errors import ConfigCompositionException
from PIL import Image
from skimage import data

from l2sae.editing.run import run
from l2sae.photos import NoFaceError, PhotoError
from l2sae.utils.errors import ConfigError, ImageFileError

GRID_SIZE = (3 * 64 + 4 * 2, 64 + 2 * 2)  # PIL (width, height) of aligned input | mask | local edit


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """astronaut.jpg (one face), pair.png (two), wall.png (no face), small.png (a face below min_face_size=120),
    broken.jpg (not an image)."""
    folder = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(folder / "astronaut.jpg", quality=95)
    pair = np.full((560, 1100, 3), 90, np.uint8)
    pair[20:532, 560:1072] = astronaut
    pair[150:534, 30:414] = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.LANCZOS))
    Image.fromarray(pair).save(folder / "pair.png")
    Image.new("RGB", (300, 200), (120, 130, 140)).save(folder / "wall.png")
    Image.fromarray(astronaut).resize((300, 300), Image.LANCZOS).save(folder / "small.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


def test_a_folder_edits_the_good_photos_and_names_the_bad_ones(tiny_checkpoints, photos, tmp_path):
    out = tmp_path / "out"
    metrics = run(edit_config(tiny_checkpoints, f"input={photos}", f"out={out}", "min_face_size=120", "strength=2"))
    assert metrics["images"] == 2
    failed = metrics["failed"]
    assert sorted(name.split("/")[-1] for name in failed) == ["broken.jpg", "small.png", "wall.png"]
    assert "no face found" in failed[str(photos / "wall.png")]
    assert "too small: 10" in failed[str(photos / "small.png")] and "below 120 px" in failed[str(photos / "small.png")]
    assert "not a readable image" in failed[str(photos / "broken.jpg")]
    written = sorted(path.name for path in out.iterdir())
    assert written == [
        "astronaut_style_hair.json",
        "astronaut_style_hair.png",
        "astronaut_style_hair_face0_grid.png",
        "pair_style_hair.json",
        "pair_style_hair.png",
        "pair_style_hair_face0_grid.png",
        "pair_style_hair_face1_grid.png",
    ]
    assert Image.open(out / "pair_style_hair.png").size == (1100, 560)
    assert Image.open(out / "pair_style_hair_face1_grid.png").size == GRID_SIZE
    sidecar = json.loads((out / "pair_style_hair.json").read_text())
    assert sidecar["size"] == [1100, 560] and sidecar["align"] == "ffhq" and sidecar["strength"] == 2.0
    first, second = sidecar["faces"]
    assert len(first["landmarks"]) == 68 and len(first["quad"]) == 4 and len(first["box"]) == 4
    assert first["status"] == second["status"] == "edited" and second["grid"] == "pair_style_hair_face1_grid.png"
    assert first["side_px"] < second["side_px"]


def test_swaps_align_the_reference_and_faces_choice(tiny_checkpoints, photos, tmp_path):
    out = tmp_path / "out"
    pair = photos / "pair.png"
    overrides = ["mode=swap_style", f"reference={photos / 'astronaut.jpg'}", "roi=skin", "faces=largest"]
    run(edit_config(tiny_checkpoints, f"input={pair}", f"out={out}", *overrides))
    faces = json.loads((out / "pair_swap_style_skin.json").read_text())["faces"]
    assert [face["status"] for face in faces] == ["skipped", "edited"] and "not chosen" in faces[0]["reason"]
    original, edited = np.asarray(Image.open(pair)), np.asarray(Image.open(out / "pair_swap_style_skin.png"))
    assert np.array_equal(original[:, :500], edited[:, :500])  # the skipped face's side is untouched


def test_one_photo_without_a_face_is_an_error_and_writes_nothing(tiny_checkpoints, photos, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NoFaceError, match="wall.png: no face found"):
        run(edit_config(tiny_checkpoints, f"input={photos / 'wall.png'}", f"out={out}"))
    assert not out.exists() or not list(out.iterdir())
    with pytest.raises(PhotoError, match="no photo could be edited"):
        run(edit_config(tiny_checkpoints, f"input={photos}", f"out={out}", "min_face_size=12000"))
    with pytest.raises(ConfigCompositionException, match="align=rotate") as caught:  # refused by the schema
        run(edit_config(tiny_checkpoints, f"input={photos}", f"out={out}", "align=rotate"))
    assert "expected one of [auto, ffhq, crop, none]" in str(caught.value.__cause__)


def test_a_faces_grid_name_never_overwrites_an_input(tiny_checkpoints, photos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes((photos / "astronaut.jpg").read_bytes())
    clash = folder / "astronaut_style_hair_face0_grid.png"  # what the face's grid would be named, with out= here
    Image.new("RGB", (32, 32)).save(clash)
    before = clash.read_bytes()
    with pytest.raises(ImageFileError, match=r"astronaut_style_hair_face0_grid\.png: a face's grid would overwrite"):
        run(edit_config(tiny_checkpoints, f"input={folder}", f"out={folder}"))
    assert clash.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [
        "astronaut.jpg",
        "astronaut_style_hair_face0_grid.png",
    ]


def test_the_detection_settings_reach_the_detector_and_are_checked(tiny_checkpoints, photos, tmp_path, monkeypatch):
    from l2sae.photos import faces as faces_module
    from l2sae.photos.detection import smallest_detectable_face

    seen = []
    monkeypatch.setattr(faces_module, "detect_faces", lambda image, **kw: seen.append(kw) or [])  # no face
    with pytest.raises(NoFaceError, match=r"pair\.png: no face found .* at least ~80 px wide"):  # 1100 px < 2048
        run(edit_config(tiny_checkpoints, f"input={photos / 'pair.png'}", f"out={tmp_path}", "detection_side=2048",
                        "upsample=0"))  # fmt: skip
    assert seen == [{"detection_side": 2048, "upsample": 0}]
    for override, message in (("detection_side=10", "detection_side: expected a side of at least 64"),
                              ("upsample=3", "upsample: expected 0, 1, 2 or null")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            run(edit_config(tiny_checkpoints, f"input={photos}", f"out={tmp_path / 'x'}", override))
    # the narrowest face found: dlib's 80 px window of the detection copy, halved by each doubling
    assert smallest_detectable_face(600, 800) == 40 and smallest_detectable_face(600, 800, upsample=0) == 80
    assert smallest_detectable_face(3000, 4000) == 156 and smallest_detectable_face(3000, 4000, 4000, 1) == 40
