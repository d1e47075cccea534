"""The networks reproduce the official SAE implementation's outputs (tests/fixtures/sae_tiny)."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from l2sae.nn import SAEConfig, SwappingAutoencoder, load_sae, random_patch_crops

FIXTURE = Path(__file__).parent / "fixtures" / "sae_tiny"
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}


def discriminator_weights(recipe: dict) -> dict[str, torch.Tensor]:
    """The D./Dpatch. parameters defined by discriminators.json (one seeded generator, in order)."""
    g = torch.Generator().manual_seed(recipe["seed"])
    return {
        e["key"]: torch.randn(e["shape"], generator=g, dtype=torch.float32) * recipe["std"] for e in recipe["params"]
    }


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(FIXTURE / "io.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference_model() -> SwappingAutoencoder:
    """load_sae on the official E/G checkpoint, then the recipe's D/Dpatch parameters."""
    options = json.loads((FIXTURE / "options.json").read_text())["options"]
    config = SAEConfig.from_official_options(options)
    eg = load_sae(FIXTURE / "latest_checkpoint.pth", config=config)
    model = SwappingAutoencoder(config)
    state = model.state_dict()  # D / Dpatch buffers as the constructor builds them
    state.update(eg.state_dict())
    state.update(discriminator_weights(json.loads((FIXTURE / "discriminators.json").read_text())))
    model.load_state_dict(state)
    return model.eval().set_noise("zero")


def test_recipe_reproduces_the_stream():
    recipe = json.loads((FIXTURE / "discriminators.json").read_text())
    weights = discriminator_weights(recipe)
    digest = hashlib.sha256(b"".join(w.numpy().astype("<f4").tobytes() for w in weights.values())).hexdigest()
    assert digest == recipe["sha256_float32_le"]


def test_tiny_preset_is_the_fixture_architecture_with_smaller_discriminators():
    options = json.loads((FIXTURE / "options.json").read_text())["options"]
    official_widths = {"discriminator_max_channels": 512, "patch_discriminator_pair_width": 2048}
    assert SAEConfig.from_official_options(options) == SAEConfig.preset("tiny", **official_widths)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_outputs_match_official(reference_model, io, dtype):
    suffix = "_f64" if dtype == torch.float64 else ""
    model = reference_model.to(dtype)

    def ref(key):
        return io[key + suffix] if key + suffix in io else io[key]

    x, crops = io["x"].to(dtype), io["crops"].to(dtype)
    structure, texture = ref("structure").to(dtype), ref("texture").to(dtype)
    pdisc = model.patch_discriminator
    with torch.no_grad():
        encoded = model.encode(x)
        outputs = {
            "structure": encoded[0],
            "texture": encoded[1],
            "rec": model.decode(structure, texture),
            "swap": model.decode(structure, texture.flip(0)),
            "D_x": model.discriminator(x),
            "patch_feat": pdisc.extract_features(crops),
            "patch_feat_agg": pdisc.extract_features(crops, aggregate=True),
            "patch_pred": pdisc.discriminate_features(io["patch_pair_a"].to(dtype), io["patch_pair_b"].to(dtype)),
        }
    errors = {k: (v - io[k + suffix]).abs().max().item() for k, v in outputs.items()}
    reference_model.float()
    assert all(v.dtype == dtype for v in outputs.values())
    assert max(errors.values()) < TOLERANCE[dtype], errors


def test_swap_method_exchanges_textures_within_pairs(reference_model, io):
    with torch.no_grad():
        swapped = reference_model.swap(io["structure"], io["texture"])
    assert (swapped - io["swap"]).abs().max() < 1e-5


def test_patch_crops_follow_the_official_random_stream(io):
    torch.manual_seed(103)
    crops = random_patch_crops(io["x"], patch_size=32, num_crops=8, min_scale=0.125, max_scale=0.25)
    assert crops.shape == (2, 8, 3, 32, 32)
    assert (crops - io["crops"]).abs().max() < 1e-6
