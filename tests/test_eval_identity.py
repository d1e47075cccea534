"""Identity with dlib's face descriptor: the same photo is the same person, another face is not, misses are counted."""

import numpy as np
import pytest
import torch
from skimage import data

from l2sae.evaluation.face_descriptor import FaceDescriber, to_uint8_array
from l2sae.evaluation.identity import SAME_PERSON_DISTANCE, IdentityScores


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [-1, 1]."""
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.fixture(scope="module")
def describer():
    return FaceDescriber()


@pytest.fixture(scope="module")
def faces():
    """The astronaut (Eileen Collins) and another person: the first face of LFW's subset (25 px, grey), enlarged."""
    other = np.asarray(data.lfw_subset()[0] * 255, dtype=np.uint8)
    return to_tensor(data.astronaut()), to_tensor(np.repeat(np.kron(other, np.ones((8, 8), np.uint8))[..., None], 3, 2))


def test_the_same_photo_twice_is_similarity_one_and_distance_zero(describer, faces):
    astronaut, _ = faces
    (descriptor,) = describer(astronaut)
    assert descriptor.shape == (128,)
    scores = IdentityScores()
    scores.add([descriptor], describer(astronaut.clone()))
    result = scores.compute()
    assert result["identity_similarity"] == pytest.approx(1.0, abs=1e-9)
    assert result["identity_distance"] == pytest.approx(0.0, abs=1e-9)
    assert result["identity_match"] == 1.0 and result["identity_pairs"] == 1


def test_two_different_people_are_further_apart_than_the_threshold(describer, faces):
    astronaut, other = faces
    scores = IdentityScores()
    scores.add(describer(astronaut), describer(other))
    result = scores.compute()
    assert result["identity_distance"] > SAME_PERSON_DISTANCE and result["identity_match"] == 0.0
    assert result["identity_similarity"] < 0.95 and result["identity_pairs"] == 1


def test_pairs_without_a_detected_face_are_counted_not_scored(describer, faces):
    astronaut, _ = faces
    blank = torch.zeros(1, 3, 64, 64)  # no face: a small flat image, enlarged before detection
    (face,) = describer(astronaut)
    assert describer(blank) == [None]
    scores = IdentityScores()
    scores.add([face, None, face], [face, face, None])
    result = scores.compute()
    assert result["identity_pairs"] == 1 and result["identity_match"] == 1.0
    assert result["identity_missed_inputs"] == 1 and result["identity_missed_edits"] == 1
    empty = IdentityScores().compute()
    assert empty["identity_similarity"] is None and empty["identity_pairs"] == 0
    with pytest.raises(ValueError, match="2 input descriptors but 1 edit"):
        scores.add([face, face], [face])


def test_to_uint8_array_round_trips_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(to_uint8_array(to_tensor(pixels)[0]), pixels)
