"""Model behaviour: ops, noise control, swapping, crops, input checks."""

import pytest
import torch

from l2sae.nn import SAEConfig, SwappingAutoencoder, pairwise_swap, random_patch_crops
from l2sae.nn.ops import make_fir_kernel, normalize, upfirdn2d, upfirdn2d_reference


@pytest.fixture(scope="module")
def model() -> SwappingAutoencoder:
    torch.manual_seed(2)
    sae = SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False)
    with torch.no_grad():  # official init has zero noise weights; make noise visible
        for name, p in sae.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)
    return sae


@pytest.mark.parametrize(
    "up, down, pad", [(1, 1, (2, 1)), (2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (0, -1)), (2, 2, (1, 0))]
)
def test_upfirdn2d_matches_reference(up, down, pad):
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    kernel = make_fir_kernel([1, 3, 3, 1]) * torch.linspace(0.5, 1.5, 4)[:, None]  # asymmetric: checks the flip
    out = upfirdn2d(x, kernel, up, down, pad)
    side = (9 * up + pad[0] + pad[1] - 4) // down + 1
    assert out.shape == (2, 3, side, side)
    assert torch.allclose(out, upfirdn2d_reference(x, kernel, up, down, pad), atol=1e-12)


def test_fir_kernels_and_normalize():
    assert torch.allclose(make_fir_kernel([1, 2, 1]) * 16, torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]))
    assert make_fir_kernel([1, 3, 3, 1], gain=4).sum().item() == 4.0
    v = normalize(torch.randn(3, 5, 2, 2))
    assert torch.allclose(v.pow(2).sum(1), torch.ones(3, 2, 2), atol=1e-6)


def test_shapes_and_code_norms(model):
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    structure, texture = model.encode(x)
    assert structure.shape == (4, 8, 8, 8) and texture.shape == (4, 64)
    assert torch.allclose(structure.norm(dim=1), torch.ones(4, 8, 8), atol=1e-5)
    assert torch.allclose(texture.norm(dim=1), torch.ones(4), atol=1e-5)
    assert model.encode(torch.zeros(1, 3, 128, 96))[0].shape == (1, 8, 16, 12)  # any divisible size


def test_noise_modes(model):
    structure, texture = model.encode(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        model.set_noise("random")
        assert not torch.equal(model.decode(structure, texture), model.decode(structure, texture))
        model.set_noise("zero")
        assert torch.equal(model.decode(structure, texture), model.decode(structure, texture))
    with pytest.raises(ValueError, match="noise mode"):
        model.set_noise("fixed")


def test_swap_uses_pair_partner_texture(model):
    model.set_noise("zero")
    structure, texture = model.encode(torch.rand(4, 3, 64, 64))
    with torch.no_grad():
        swapped = model.swap(structure, texture)
        expected = model.decode(structure[2:3], texture[3:4])
    assert torch.allclose(swapped[2:3], expected, atol=1e-6)
    assert torch.equal(pairwise_swap(torch.arange(6)), torch.tensor([1, 0, 3, 2, 5, 4]))
    with pytest.raises(ValueError, match="even"):
        pairwise_swap(torch.arange(3))


def test_bad_image_size_is_reported(model):
    with pytest.raises(ValueError, match="images: image side 60"):
        model.encode(torch.zeros(1, 3, 60, 64))


def test_gradients_reach_every_network():
    sae = SwappingAutoencoder(SAEConfig.preset("tiny"))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    rec = sae(x)
    crops = random_patch_crops(rec, 32, num_crops=2)
    feats = sae.patch_discriminator.extract_features(crops, aggregate=True)
    loss = (
        rec.abs().mean()
        + sae.discriminator(rec).mean()
        + sae.patch_discriminator.discriminate_features(feats, feats).mean()
    )
    loss.backward()
    for name in ("E", "G", "D", "Dpatch"):
        grads = [p.grad for p in getattr(sae, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_patch_crops_geometry():
    # a horizontal ramp: every crop's columns increase (no flip) or decrease (flip)
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 64, 64)
    g = torch.Generator().manual_seed(0)
    crops = random_patch_crops(ramp, 16, num_crops=32, min_scale=0.25, max_scale=0.5, generator=g)
    assert crops.shape == (1, 32, 3, 16, 16)
    steps = crops[0, :, 0, 8, 1:] - crops[0, :, 0, 8, :-1]
    flipped = (steps < 0).all(dim=1)
    assert ((steps > 0).all(dim=1) | flipped).all() and 0 < flipped.sum() < 32
    # the ramp rises 2 * 64 / 63 per image width; a crop spans 2 * scale in grid units = scale widths
    span = crops[0, :, 0, 8, :].amax(1) - crops[0, :, 0, 8, :].amin(1)
    assert (span > 0.25 * 2 * 64 / 63 - 1e-4).all() and (span < 0.5 * 2 * 64 / 63 + 1e-4).all()
    again = random_patch_crops(ramp, 16, 32, 0.25, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)
