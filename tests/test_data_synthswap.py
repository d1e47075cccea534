"""Structure-swap ground truth drawn from the synthetic faces' parameters."""

import json

import numpy as np
import pytest
from PIL import Image

from l2sae.data.synthfaces import draw_face
from l2sae.data.synthswap import SWAPPABLE_ROIS, draw_swaps, face_rng, fixed_pairs, main, region_mask
from l2sae.regions import DEFAULT_REGION_PARTS
from l2sae.utils.errors import ConfigError

SIZE = 64
# Parts painted after (in front of) each region's parts in synthfaces' drawing order.
LATER_PARTS = {
    "hair": ("neck", "l_ear", "r_ear", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "l_lip", "mouth"),
    "eyes": ("l_brow", "r_brow", "nose", "u_lip", "l_lip", "mouth"),
    "nose": ("u_lip", "l_lip", "mouth"),
    "lips_mouth": (),
}


def test_a_face_with_its_own_region_is_itself():
    for case in draw_swaps(seed=3, size=SIZE, pairs=[(5, 5), (0, 0)], rois=SWAPPABLE_ROIS):
        image, labels = draw_face(face_rng(3, case.index), SIZE)
        np.testing.assert_array_equal(case.truth, image)
        np.testing.assert_array_equal(case.truth_labels, labels)
        np.testing.assert_array_equal(case.truth_mask, case.face_mask)


def test_faces_are_those_of_the_synthetic_set():
    image, _ = draw_face(np.random.default_rng(np.random.SeedSequence(7).spawn(4)[3]), SIZE)  # as generate() draws it
    (case,) = draw_swaps(seed=7, size=SIZE, pairs=[(3, 1)], rois=["nose"])
    np.testing.assert_array_equal(case.face, image)


@pytest.mark.parametrize("roi", SWAPPABLE_ROIS)
def test_the_region_takes_the_donors_placed_mask_and_the_rest_stays(roi):
    cases = draw_swaps(seed=0, size=SIZE, pairs=[(0, 1), (2, 3), (4, 6)], rois=[roi])
    for case in cases:
        _, donor_labels = draw_face(face_rng(0, case.donor_index), SIZE)
        later = region_mask(donor_labels, LATER_PARTS[roi])
        # the donor's own region is the placed shapes minus the donor's later parts ...
        np.testing.assert_array_equal(case.donor_mask, case.placed & ~later)
        # ... and in the swap the same shapes, minus the face's later parts
        np.testing.assert_array_equal(case.truth_mask, case.placed & ~region_mask(case.truth_labels, LATER_PARTS[roi]))
        assert not np.array_equal(case.truth_mask, case.face_mask)
        assert not (case.placed | case.face_mask)[~case.changed].any()
        np.testing.assert_array_equal(case.truth[~case.changed], case.face[~case.changed])
        assert not np.array_equal(case.truth, case.face)


def test_swaps_are_deterministic_and_keep_the_faces_colours():
    first, second = (draw_swaps(seed=1, size=SIZE, pairs=[(0, 1)], rois=["lips_mouth"])[0] for _ in range(2))
    np.testing.assert_array_equal(first.truth, second.truth)
    lips = first.truth_mask & first.face_mask & ~region_mask(first.truth_labels, ["mouth"])
    face_lip_colour = np.median(first.face[first.face_mask], axis=0)
    donor_lip_colour = np.median(first.donor[first.donor_mask], axis=0)
    truth_lip_colour = np.median(first.truth[lips], axis=0)
    assert np.abs(truth_lip_colour - face_lip_colour).max() < np.abs(truth_lip_colour - donor_lip_colour).max()


def test_bad_requests_fail_clearly():
    with pytest.raises(ConfigError, match="structure_swap.rois: no structure-swap ground truth for 'skin'"):
        draw_swaps(seed=0, size=SIZE, pairs=[(0, 1)], rois=["skin"])
    with pytest.raises(ConfigError, match="structure_swap.pairs: 3 pairs need 6 images"):
        fixed_pairs([10, 11, 12, 13], 3)
    assert fixed_pairs([10, 11, 12, 13], 2) == [(10, 11), (12, 13)]
    assert set(SWAPPABLE_ROIS) <= set(DEFAULT_REGION_PARTS)


def test_the_command_line_writes_the_set_once(tmp_path, capsys):
    main(["--out", str(tmp_path / "swaps"), "--size", "32", "--first", "4", "--pairs", "2", "--rois", "nose", "eyes"])
    assert capsys.readouterr().out.strip() == f"wrote 4 swaps to {tmp_path / 'swaps'}"
    listing = json.loads((tmp_path / "swaps" / "swaps.json").read_text())["swaps"]
    assert listing[0] == {"roi": "nose", "face": 4, "donor": 5} and len(listing) == 4
    (case,) = draw_swaps(seed=0, size=32, pairs=[(6, 7)], rois=["eyes"])
    strip = np.asarray(Image.open(tmp_path / "swaps" / "eyes" / "6_from_7.png"))
    assert strip.shape == (32, 128, 3)
    np.testing.assert_array_equal(strip[:, 64:96], np.round(case.truth * 255).astype(np.uint8))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["swaps"]  # no temporary folder left
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "swaps")])
    assert "exists; choose a new folder" in capsys.readouterr().err
