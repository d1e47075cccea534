"""State-dict keys/shapes equal the official ones; the architecture is recovered from shapes."""

import json
from pathlib import Path

import pytest
import torch

from l2sae.nn import SAEConfig, SwappingAutoencoder, infer_config
from l2sae.nn.checkpoint import CheckpointError

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL = ["ffhq256", "ffhq512", "ffhq1024", "ffhq1024_patchDv7_L1_smallerstructurecode"]


def reference(name: str) -> dict:
    return json.loads((FIXTURES / f"sae_state_dict_{name}.json").read_text())


def meta_shapes(config: SAEConfig, with_discriminators: bool = True) -> dict[str, list[int]]:
    with torch.device("meta"):
        model = SwappingAutoencoder(config, with_discriminators)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def meta_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


@pytest.mark.parametrize("preset", ["ffhq256", "ffhq512", "ffhq1024"])
def test_preset_has_official_keys_and_shapes(preset):
    assert meta_shapes(SAEConfig.preset(preset)) == reference(preset)["state_dict"]


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_options_give_official_shapes(name):
    ref = reference(name)
    assert meta_shapes(SAEConfig.from_official_options(ref["options"])) == ref["state_dict"]


@pytest.mark.parametrize("name", OFFICIAL)
def test_config_inferred_from_shapes(name):
    ref = reference(name)
    config = infer_config(meta_state(ref["state_dict"]))
    assert config == SAEConfig.from_official_options(ref["options"])
    assert meta_shapes(config) == ref["state_dict"]


@pytest.mark.parametrize("name", ["ffhq1024", "ffhq1024_patchDv7_L1_smallerstructurecode"])
def test_variants_inferred_from_shapes(name):
    """The 1024 release's ambiguities: test crop 1024 for D, encoder widths without the cap."""
    ref = reference(name)
    for variant in ref["variants"].values():
        shapes = dict(ref["state_dict"])
        shapes.update({k: d["variant"] for k, d in variant["state_dict_keys_that_differ"].items()})
        config = infer_config(meta_state(shapes))
        assert meta_shapes(config) == shapes
        assert config.encoder_widths() == variant["derived"]["encoder_nc"]


def test_without_discriminators_needs_crop_size():
    shapes = {k: s for k, s in reference("ffhq512")["state_dict"].items() if not k.startswith(("D.", "Dpatch."))}
    with pytest.raises(CheckpointError, match="crop_size"):
        infer_config(shapes)
    config = infer_config(shapes, overrides={"crop_size": 512})
    assert meta_shapes(config, with_discriminators=False) == shapes
    assert config == SAEConfig.preset("ffhq512")


def test_not_an_sae_state_dict():
    with pytest.raises(CheckpointError, match="not a Swapping Autoencoder"):
        infer_config({"conv.weight": [8, 3, 3, 3]})


def test_widths_off_schedule_are_reported():
    shapes = dict(reference("ffhq256")["state_dict"])
    shapes["G.UpsamplingResBlock128.conv1.conv.weight"] = [1, 100, 256, 3, 3]
    with pytest.raises(CheckpointError, match="generator_capacity"):
        infer_config(shapes)
