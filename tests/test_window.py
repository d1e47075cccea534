"""Window decodes: the generator's upsampling blocks on the features a box of pixels needs."""

import pytest
import torch
from tiny_networks import TINY_SLICING

from l2sae.editing import AlphaMatting, L2SAEEditor
from l2sae.editing.window import decode_box, matte_box
from l2sae.nn import SAEConfig, SwappingAutoencoder
from l2sae.nn import window as nn_window
from l2sae.nn.window import Box, decode_window
from l2sae.utils.errors import ConfigError

BOXES_64 = [Box(20, 24, 34, 40), Box(0, 0, 9, 13), Box(50, 41, 64, 64), Box(1, 3, 63, 61), Box(31, 0, 32, 64)]


def _sae(preset: str, seed: int) -> SwappingAutoencoder:
    torch.manual_seed(seed)
    return (
        SwappingAutoencoder(SAEConfig.preset(preset), with_discriminators=False)
        .eval()
        .requires_grad_(False)
        .set_noise("zero")
    )


@pytest.fixture(scope="module")
def tiny():
    sae = _sae("tiny", 3)
    with torch.inference_mode():
        structure, texture = sae.encode(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
        return sae, structure, texture, sae.decode(structure, texture)


def _max_difference(sae, structure, texture, full, box) -> float:
    with torch.inference_mode():
        window = decode_window(sae.G, structure, texture, box)
    return (window - full[..., box.top : box.bottom, box.left : box.right]).abs().max().item()


@pytest.mark.parametrize("box", BOXES_64)
def test_window_equals_the_full_decode_inside_and_at_the_image_border(tiny, box):
    sae, structure, texture, full = tiny
    scale = full.abs().max().item()
    assert _max_difference(sae, structure, texture, full, box) < 1e-5 * scale


def test_a_halo_one_feature_short_differs(tiny, monkeypatch):
    """The halo read off the layers is needed: one input pixel less per block changes the window."""
    sae, structure, texture, full = tiny
    exact = nn_window.block_input_interval

    def short(block, start, stop, size):
        first, last = exact(block, start, stop, size)
        return (first + 1 if first > 0 else first), (last - 1 if last < size else last)

    monkeypatch.setattr(nn_window, "block_input_interval", short)
    assert _max_difference(sae, structure, texture, full, BOXES_64[0]) > 1e-3 * full.abs().max().item()


@pytest.mark.slow
def test_window_of_the_ffhq256_architecture():
    """Random weights of the official 256 px architecture: a nose-sized box and one at the corner."""
    sae = _sae("ffhq256", 0)
    with torch.inference_mode():
        structure, texture = torch.randn(1, 8, 16, 16), torch.randn(1, 2048)
        full = sae.decode(structure, texture)
    scale = full.abs().max().item()
    for box in (Box(100, 110, 150, 146), Box(200, 0, 256, 40)):
        assert _max_difference(sae, structure, texture, full, box) < 1e-5 * scale


def test_bad_boxes_are_refused(tiny):
    sae, structure, texture, _ = tiny
    with pytest.raises(ValueError, match="empty box"):
        decode_window(sae.G, structure, texture, Box(5, 5, 5, 9))
    with pytest.raises(ValueError, match="exceeds"):
        decode_window(sae.G, structure, texture, Box(0, 0, 65, 9))


def test_matte_box_and_fallback():
    matte = torch.zeros(2, 1, 64, 64)
    assert matte_box(matte).area == 0 and decode_box(matte, 0.5) == Box(0, 0, 0, 0)
    matte[0, 0, 10:20, 30:40] = 0.5
    matte[1, 0, 15:25, 5:8] = 1.0
    assert matte_box(matte) == Box(10, 5, 25, 40)  # the union over the batch
    assert decode_box(matte, 0.5) == Box(10, 5, 25, 40)
    assert decode_box(matte, 0.1) is None  # 525 of 4096 pixels: more than a tenth, decode everything


def _editors(networks, **options):
    common = dict(matting=AlphaMatting(kernel_size=5), precision="32", **options)
    return L2SAEEditor(*networks, TINY_SLICING, window=True, **common), L2SAEEditor(
        *networks, TINY_SLICING, window=False, **common
    )


def _spy_decodes(monkeypatch, network):
    calls = []
    original = network.decode
    monkeypatch.setattr(network, "decode", lambda *args: calls.append(args) or original(*args))
    return calls


def test_editor_window_edits_equal_full_decode_edits_and_fall_back(tiny, monkeypatch):
    sae = tiny[0]
    windowed, full = _editors((sae, _sae("tiny", 4)))
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    faces, reference = windowed.encode(images), full.encode(images)
    nose = torch.zeros(2, 64, 64)
    nose[:, 30:38, 28:36] = 1.0
    hair = torch.zeros(2, 64, 64)
    hair[:, :40] = 1.0
    for encoded in (faces, reference):
        encoded.region_masks.update(nose=nose, hair=hair)
    full_decodes = _spy_decodes(monkeypatch, sae)
    small = windowed.edit_style(faces, "nose", strength=1.0, seed=2)
    assert not full_decodes  # a window decode
    expected = full.edit_style(reference, "nose", strength=1.0, seed=2)  # the same SMN: one full decode
    assert torch.equal(small.matte, expected.matte)
    assert (small.images - expected.images).abs().max() < 1e-5
    outside = (small.matte == 0).expand_as(images)
    assert torch.equal(small.images[outside], images[outside])
    assert torch.equal(windowed.edit_style(faces, "nose", strength=1.0, seed=2).images, small.images)  # cached
    large = windowed.edit_style(faces, "hair", strength=1.0, seed=2)  # 5/8 of the image: the full decode
    assert len(full_decodes) == 2
    assert torch.equal(large.images, full.edit_style(reference, "hair", 1.0, 2).images)  # remembered: no decode
    windowed.edit_style(faces, "nose", strength=1.0, seed=2)  # covered by the remembered full decode
    assert len(full_decodes) == 2
    swapped = windowed.swap_style(faces, reference, "nose")
    assert (swapped.images - full.swap_style(reference, reference, "nose").images).abs().max() < 1e-5
    with pytest.raises(ConfigError, match="window_max_fraction"):
        L2SAEEditor(sae, sae, TINY_SLICING, window_max_fraction=1.5)
