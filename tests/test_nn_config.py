"""SAEConfig: presets, official option names, validation naming the field, backbone yaml files."""

from pathlib import Path

import pytest
import torch
import yaml

from l2sae.nn import PRESETS, SAEConfig, SwappingAutoencoder

CONF = Path(__file__).parents[1] / "conf" / "backbone"


def test_official_names_map_and_unknown_names_are_ignored():
    config = SAEConfig.from_official_options(
        {"spatial_code_ch": 16, "global_code_ch": 512, "netE_num_downsampling_sp": 3, "lr": 0.1, "netG_resnet_ch": 7}
    )
    assert (config.structure_channels, config.texture_channels, config.encoder_downsamplings_structure) == (16, 512, 3)
    assert config.crop_size == 256 and config.patch_size == 128  # official defaults
    assert SAEConfig.from_official_options(config.to_official_options()) == config


def test_channel_schedules_follow_official_rounding():
    big = SAEConfig.preset("ffhq1024")
    assert big.encoder_widths() == [13, 26, 51, 102, 205, 410, 819, 1536]
    assert big.generator_widths() == [409, 409, 409, 409, 204, 102]
    assert big.generator_head_widths() == [204, 409]  # round(204.5) == 204
    assert SAEConfig.preset("tiny").generator_head_widths() == [26, 51]  # round(25.5) == 26


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dict_round_trip(name):
    config = SAEConfig.preset(name)
    assert SAEConfig.from_dict(config.to_dict()) == config
    explicit = SAEConfig.preset(name, encoder_channels=config.encoder_widths())
    assert SAEConfig.from_dict(explicit.to_dict()) == explicit


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_backbone_yaml_matches_preset(name):
    entry = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert entry["checkpoint"] is None
    assert SAEConfig.from_backbone(entry) == SAEConfig.preset(name)


def test_backbone_preset_with_overrides():
    assert SAEConfig.from_backbone({"preset": "tiny", "crop_size": 128, "checkpoint": None}) == SAEConfig.preset(
        "tiny", crop_size=128
    )
    with pytest.raises(ValueError, match="backbone: unknown SAEConfig field"):
        SAEConfig.from_backbone({"preset": "tiny", "crop_sise": 128})


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"crop_size": 100}, "crop_size"),  # not divisible by 2^3
        ({"crop_size": 32}, "crop_size"),  # texture convs run out of pixels
        ({"patch_size": 24}, "patch_size"),
        ({"structure_channels": 0}, "structure_channels"),
        ({"generator_capacity": 0.0}, "generator_capacity"),
        ({"encoder_channels": (8, 8)}, "encoder_channels"),
        ({"num_classes": 3}, "num_classes"),
        ({"patch_discriminator_max_channels": 128}, "patch_discriminator_capacity"),
        ({"discriminator_max_channels": 0}, "discriminator_max_channels"),
        ({"patch_discriminator_pair_width": 1}, "patch_discriminator_pair_width"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        SAEConfig.preset("tiny", **overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match="ffhq256"):
        SAEConfig.preset("ffhq2048")


def test_the_tiny_presets_discriminators_are_small_and_the_official_ones_keep_their_widths():
    tiny = SwappingAutoencoder(SAEConfig.preset("tiny"))
    d, pair = tiny.discriminator, tiny.patch_discriminator.pairlinear
    assert d.final_conv.Conv.weight.shape[:2] == (64, 64) and d.final_linear[0].weight.shape == (64, 64 * 4 * 4)
    assert [layer.weight.shape[0] for layer in pair] == [256, 256, 128, 1]
    assert sum(p.numel() for p in tiny.parameters()) < 1_000_000  # 19.2M with the official 512 / 2048
    with torch.device("meta"):
        official = SwappingAutoencoder(SAEConfig.preset("ffhq256"))
    assert official.discriminator.final_conv.Conv.weight.shape[:2] == (512, 512)
    assert [layer.weight.shape[0] for layer in official.patch_discriminator.pairlinear] == [2048, 2048, 1024, 1]
