"""load_sae / save_sae / read_extra: both formats, and clear errors for bad files."""

import os
from pathlib import Path

import pytest
import torch

from l2sae.nn import CheckpointError, SAEConfig, SwappingAutoencoder, load_sae, read_extra, save_sae

OFFICIAL_TINY = Path(__file__).parent / "fixtures" / "sae_tiny" / "latest_checkpoint.pth"


@pytest.fixture(scope="module")
def tiny() -> SwappingAutoencoder:
    torch.manual_seed(1)
    return SwappingAutoencoder(SAEConfig.preset("tiny")).set_noise("zero")


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory) -> Path:
    """``tiny`` saved once with its discriminators and an extra dict (the file is ~80 MB)."""
    return save_sae(
        tiny, tmp_path_factory.mktemp("run") / "smpn.pt", extra={"kind": "smpn", "slicing": {"hair": [0, 1]}}
    )


def outputs(model: SwappingAutoencoder, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        structure, texture = model.encode(x)
        result = [structure, texture, model.decode(structure, texture)]
        if model.has_discriminators:
            result.append(model.discriminator(x))
    return result


def test_save_load_round_trip(tiny, saved):
    assert sorted(os.listdir(saved.parent)) == ["smpn.pt"]  # no temporary left behind
    assert read_extra(saved) == {"kind": "smpn", "slicing": {"hair": [0, 1]}}
    loaded = load_sae(saved).set_noise("zero")
    assert loaded.config == tiny.config and loaded.has_discriminators
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    for a, b in zip(outputs(loaded, x), outputs(tiny, x)):
        assert torch.equal(a, b)


def test_inference_file_without_discriminators(tiny, tmp_path):
    path = save_sae(tiny, tmp_path / "smn.pt", with_discriminators=False)
    model = load_sae(path)
    assert model.discriminator is None and model.patch_discriminator is None
    with pytest.raises(CheckpointError, match="with_discriminators=False"):
        load_sae(path, with_discriminators=True)


def test_load_skips_discriminators_on_request(saved):
    model = load_sae(saved, with_discriminators=False)
    assert not model.has_discriminators
    assert not any(k.startswith(("D.", "Dpatch.")) for k in model.state_dict())


def test_official_file_loads_as_it_is():
    official = torch.load(OFFICIAL_TINY, weights_only=True)
    model = load_sae(OFFICIAL_TINY, config={"crop_size": 64})
    assert not model.has_discriminators
    state = model.state_dict()
    assert state.keys() == official.keys()
    assert all(torch.equal(state[k], official[k]) for k in official)
    assert model.config.encoder_widths() == SAEConfig.preset("tiny").encoder_widths()
    assert model.num_discriminator_iters.item() == 1234


def test_official_file_with_discriminators_infers_crop(tiny, tmp_path):
    path = tmp_path / "latest_checkpoint.pth"
    torch.save(tiny.state_dict(), path)  # the official format: one flat state dict
    model = load_sae(path)
    assert model.config == tiny.config and model.has_discriminators


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_sae(tmp_path / "nowhere.pth")


def test_truncated_file(saved, tmp_path):
    path = tmp_path / "smn.pt"
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"smn\.pt.*truncated"):
        load_sae(path)


def test_file_of_another_model(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"resnet\.pth.*not a Swapping Autoencoder"):
        load_sae(path)


def test_lightning_checkpoint_is_pointed_to_the_export(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="smn.pt"):
        load_sae(path)


def test_config_that_does_not_fit_lists_keys():
    with pytest.raises(CheckpointError) as info:
        load_sae(OFFICIAL_TINY, config=SAEConfig.preset("tiny", structure_channels=16))
    message = str(info.value)
    assert str(OFFICIAL_TINY) in message and "mis-shaped" in message
    assert "E.ToSpatialCode.1.Conv.weight (file [8, 64, 1, 1], model [16, 64, 1, 1])" in message


def test_partial_file_lists_missing_and_unexpected(tmp_path):
    state = torch.load(OFFICIAL_TINY, weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("G.ToRGB")}
    state["E.extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_sae(path, config=SAEConfig.preset("tiny"))
    message = str(info.value)
    assert (
        "partial.pth" in message
        and "missing key(s): G.ToRGB" in message
        and "1 unexpected key(s): E.extra.weight" in message
    )
