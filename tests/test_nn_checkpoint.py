"""load_sae / save_sae / read_extra: both formats, and clear errors for bad files."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from l2sae.nn import CheckpointError, SAEConfig, SwappingAutoencoder, load_sae, read_extra, save_sae
from l2sae.nn.checkpoint import discriminator_crop_size

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


def test_discriminator_crop_size_reads_the_config_or_the_official_shapes(saved, tiny, tmp_path):
    assert discriminator_crop_size(saved) == 64
    assert discriminator_crop_size(save_sae(tiny, tmp_path / "smn.pt", with_discriminators=False)) is None
    torch.manual_seed(0)
    wide = SwappingAutoencoder(dataclasses.replace(SAEConfig.preset("tiny"), crop_size=128))
    torch.save(wide.state_dict(), tmp_path / "latest_checkpoint.pth")  # official format: inferred from D's shapes
    assert discriminator_crop_size(tmp_path / "latest_checkpoint.pth") == 128
    assert discriminator_crop_size(OFFICIAL_TINY) is None  # E and G only


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


@pytest.fixture(scope="module")
def tiny_parts(tiny) -> tuple[dict, dict]:
    """The config and E/G weights of ``tiny`` (a file of them is small)."""
    state = {k: v.detach() for k, v in tiny.state_dict().items() if not k.startswith(("D.", "Dpatch."))}
    return tiny.config.to_dict(), state


@pytest.mark.parametrize(("change", "message"), [
    ({"state_dict": None}, "'state_dict' is missing, not a dict"),
    ({"config": None}, "'config' is missing, not a dict"),
    ({"config": "none"}, "'config' is of type NoneType, not a dict"),
    ({"state_dict": "list"}, "'state_dict' is of type list, not a dict"),
    ({"extra": "list"}, "'extra' is of type list, not a dict"),
    ({"state_dict": "ints"}, "'state_dict' entry 'E.FromRGB.Conv.weight' is of type int, not a named tensor"),
])  # fmt: skip
def test_damaged_saved_file_names_the_part(tiny_parts, tmp_path, change, message):
    """Issue: KeyError / TypeError escaped for a l2sae-sae/1 dict with a part missing or of the wrong type."""
    config, state = tiny_parts
    payload = {"format": "l2sae-sae/1", "config": config, "state_dict": state, "extra": {}}
    values = {"none": None, "list": [1, 2], "ints": {"E.FromRGB.Conv.weight": 1}}
    for part, value in change.items():
        if value is None:
            del payload[part]
        else:
            payload[part] = values[value]
    path = tmp_path / "smn.pt"
    torch.save(payload, path)
    for reader in (load_sae, read_extra):
        with pytest.raises(CheckpointError, match=rf"smn\.pt: .*{message}.*export it again"):
            reader(path)


@pytest.mark.parametrize(("key", "shape", "message"), [
    ("G.SpatialCodeModulation.scale.weight", (3,), "not a Swapping Autoencoder state dict"),
    ("D.stylegan2_D.final_linear.0.weight", (0, 4), "damaged discriminator weights"),
])  # fmt: skip
def test_official_file_with_a_layer_of_impossible_shape_names_the_key(tmp_path, key, shape, message):
    """Issue: IndexError (a 1-D weight) and ZeroDivisionError (an empty one) escaped the shape inference."""
    state = torch.load(OFFICIAL_TINY, weights_only=True)
    state[key] = torch.zeros(shape)
    path = tmp_path / "latest_checkpoint.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"latest_checkpoint\.pth: {message} \({key} has shape \[{shape[0]}"):
        load_sae(path)


def test_pickled_module_is_refused_for_safety_with_one_line_of_reason(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError) as info:
        load_sae(path)
    message = str(info.value)
    assert message.startswith(f"{path}: holds pickled Python objects (Unsupported global: GLOBAL torch.nn")
    assert "refused for safety" in message and "save_sae(model, path)" in message
    assert "\n" not in message and "\x1b" not in message
    assert "weights_only=False" not in message and "truncated" not in message


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match=rf"{tmp_path} is a folder; give the SAE checkpoint file in it"):
        load_sae(tmp_path)
