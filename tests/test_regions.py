import pytest
import torch
from omegaconf import OmegaConf

from l2sae.regions import (
    BLACK,
    DEFAULT_REGION_PARTS,
    SliceScheme,
    masks_from_region_decodes,
    region_images,
    validate_region_parts,
)
from l2sae.utils.errors import ConfigError

DEFAULT = {"hair": [0, 1], "skin": [2, 3], "eyes": [4], "nose": [5], "lips_mouth": [6]}


def test_channel_masks_select_each_regions_channels():
    scheme = SliceScheme(DEFAULT, num_channels=8)
    masks = scheme.channel_masks()
    assert masks.shape == (5, 8)
    assert masks[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert masks[4].tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    assert masks.sum(0).max() == 1  # disjoint
    assert scheme.channel_masks(["nose", "hair"])[0].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize(
    "channels, message",
    [
        ({"hair": [0, 1], "skin": [1]}, "slicing.channels.skin: channel 1 already belongs to region 'hair'"),
        ({"hair": [8]}, "slicing.channels.hair: channel 8 is out of range"),
        ({"beard": [0]}, "slicing.channels.beard: unknown region 'beard'"),
        ({"hair": []}, "slicing.channels.hair: a region needs at least one channel"),
        ({}, "slicing.channels: no regions given"),
    ],
)
def test_bad_schemes_name_the_key(channels, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SliceScheme(channels, num_channels=8)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"num_channels": 8, "channels": {"eyes": [4.9]}}, "slicing.channels.eyes: channel 4.9 is not an integer"),
        ({"num_channels": 8, "channels": {"hair": [True]}}, "slicing.channels.hair: channel True is not an integer"),
        ({"num_channels": 8, "channels": {"nose": "45"}}, "slicing.channels.nose: expected a channel index or a list"),
        ({"num_channels": 8, "channels": {"nose": 4.0}}, "slicing.channels.nose: expected a channel index or a list"),
        ({"num_channels": 8.5, "channels": {"nose": [4]}}, "slicing.num_channels: expected a positive integer"),
        ({"num_channels": True, "channels": {"nose": [0]}}, "slicing.num_channels: expected a positive integer"),
        ({"num_channels": 8, "channels": ["hair"]}, "slicing.channels: expected a mapping region -> channels"),
    ],
)
def test_a_config_or_checkpoint_scheme_is_checked_as_written_not_converted(data, message):
    with pytest.raises(ConfigError, match=message):
        SliceScheme.from_dict(OmegaConf.create(data))


def test_a_single_channel_may_be_given_bare():
    scheme = SliceScheme.from_dict(OmegaConf.create({"num_channels": 8, "channels": {"nose": 5, "hair": [0, 1]}}))
    assert scheme.channels == {"nose": (5,), "hair": (0, 1)}


def test_missing_region_is_reported():
    scheme = SliceScheme({"hair": [0]}, num_channels=8)
    with pytest.raises(ConfigError, match=r"no channels for region\(s\) \['nose'\] listed in data.regions"):
        scheme.require(["hair", "nose"])


def test_dict_round_trip_and_rois():
    scheme = SliceScheme(DEFAULT, num_channels=8)
    again = SliceScheme.from_dict(scheme.to_dict())
    assert again == scheme
    assert scheme.validate_rois("hair") == ("hair",)
    with pytest.raises(ConfigError, match="roi: unknown region 'ears'"):
        scheme.validate_rois(["ears"])


def test_region_parts_validation():
    assert validate_region_parts(DEFAULT_REGION_PARTS)["eyes"] == ("l_eye", "r_eye")
    with pytest.raises(ConfigError, match="data.regions.eyes: unknown part 'eyeball'"):
        validate_region_parts({"eyes": ["eyeball"]})
    with pytest.raises(ConfigError, match="part 'hair' already belongs to region 'hair'"):
        validate_region_parts({"hair": ["hair"], "skin": ["skin", "hair"]})


def test_region_images_black_outside_and_image_inside():
    images = torch.rand(2, 3, 4, 4) * 2 - 1
    masks = torch.zeros(2, 2, 4, 4)
    masks[:, 0, :2] = 1
    masks[:, 1, 2:, 2:] = 1
    out = region_images(images, masks)
    assert out.shape == (2, 2, 3, 4, 4)
    assert torch.equal(out[:, 0, :, :2], images[:, :, :2])
    assert torch.all(out[:, 0, :, 2:] == BLACK)
    assert torch.equal(out[:, 1, :, 2:, 2:], images[:, :, 2:, 2:])


def test_masks_from_decodes_threshold_and_soft():
    decodes = torch.full((1, 1, 3, 2, 2), BLACK)
    decodes[0, 0, :, 0, 0] = 0.0  # mid grey: brightness 0.5
    decodes[0, 0, :, 1, 1] = -0.9  # brightness 0.05, below the 0.1 threshold
    decodes[0, 0, :, 0, 1] = -0.75  # brightness 0.125, half-way up the soft ramp
    hard = masks_from_region_decodes(decodes)
    assert hard[0, 0].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    soft = masks_from_region_decodes(decodes, soft=True)
    assert torch.allclose(soft[0, 0], torch.tensor([[1.0, 0.5], [0.0, 0.0]]))
    assert soft[0, 0, 1, 0] == 0.0  # black is exactly outside, so the matte leaves it untouched
    with pytest.raises(ValueError, match="B x R x 3 x H x W"):
        masks_from_region_decodes(torch.zeros(1, 3, 2, 2))
