"""Sliced decodes: each ROI's channels decoded alone, in one batch, with the ROI's extent kept."""

import torch

from l2sae.nn import SAEConfig, SwappingAutoencoder


def _model() -> SwappingAutoencoder:
    torch.manual_seed(0)
    return SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False).set_noise("zero").double()


def test_all_channels_equal_a_plain_decode_and_each_row_its_own_slice():
    model = _model()
    images = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1
    structure, texture = model.encode(images)
    masks = torch.tensor([[1.0] * 8, [1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 0]])
    decodes = model.decode_sliced(structure, texture, masks)
    assert decodes.shape == (2, 3, 3, 64, 64)
    assert torch.allclose(decodes[:, 0], model.decode(structure, texture), atol=1e-9)
    hair_only = structure * masks[1].double()[None, :, None, None]
    assert torch.allclose(decodes[:, 1], model.G(hair_only, texture, normalize_structure=False), atol=1e-7)


def test_a_one_channel_slice_keeps_its_magnitude_and_passes_gradients():
    model = _model()
    structure = torch.randn(1, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    texture = torch.randn(1, 64, dtype=torch.float64)
    masks = torch.zeros(1, 8)
    masks[0, 6] = 1.0
    model.decode_sliced(structure, texture, masks).square().sum().backward()
    assert structure.grad[:, 6].abs().max() > 1e-3  # renormalising the slice would make it sign(x): no gradient

    weak, strong = structure.detach().clone(), structure.detach().clone()
    weak[:, 6], strong[:, 6] = 0.01, 1.0
    assert not torch.allclose(model.decode_sliced(weak, texture, masks), model.decode_sliced(strong, texture, masks))
