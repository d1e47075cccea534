"""Algorithm 2: blurred matte, composite, seam smoothing."""

import pytest
import torch

from l2sae.editing.matting import AlphaMatting, composite, default_kernel_size, smooth_seam
from l2sae.utils.errors import ConfigError


def _square_mask(size=32, top=8, bottom=16):
    masks = torch.zeros(2, 1, size, size)
    masks[:, :, top:bottom, top:bottom] = 1.0
    return masks


def test_matte_is_blurred_mask_in_unit_range():
    masks = _square_mask()
    matte = AlphaMatting(kernel_size=5).matte(masks)
    assert matte.shape == masks.shape
    assert 0.0 <= matte.min() and matte.max() <= 1.0
    # the blur spreads the mask by at most the kernel radius (2 px) and keeps the far field exactly 0
    assert (matte[:, :, 6:18, 6:18] > 0).all()
    assert (matte[:, :, :6] == 0).all() and (matte[:, :, 18:] == 0).all()
    # and it softens the edge: the border pixel of the mask is between 0 and 1
    assert 0.2 < matte[0, 0, 8, 12] < 0.8


@pytest.mark.parametrize("seam_strength", [0.0, 0.5, 1.0])
def test_pixels_where_matte_is_zero_equal_input_exactly(seam_strength):
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    global_edit = torch.rand(2, 3, 32, 32) * 2 - 1
    edited, matte = AlphaMatting(kernel_size=5, seam_strength=seam_strength)(images, global_edit, _square_mask())
    outside = (matte == 0).expand_as(images)
    assert outside.any()
    assert torch.equal(edited[outside], images[outside])
    # where the matte is 1 the global edit is taken as it is
    inside = (matte == 1).expand_as(images)
    assert torch.equal(edited[inside], global_edit[inside])


def test_composite_is_the_papers_formula():
    images, global_edit = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    matte = torch.rand(1, 1, 8, 8)
    expected = matte * global_edit + (1 - matte) * images
    assert torch.allclose(composite(images, global_edit, matte), expected)


def test_seam_smoothing_only_touches_the_seam():
    images = torch.rand(1, 3, 16, 16)
    matte = torch.zeros(1, 1, 16, 16)
    matte[..., 4:8] = 0.5
    matte[..., 8:] = 1.0
    smoothed = smooth_seam(images, matte, strength=1.0, kernel_size=3)
    assert torch.equal(smoothed[..., :4], images[..., :4])
    assert torch.equal(smoothed[..., 8:], images[..., 8:])
    assert not torch.equal(smoothed[..., 4:8], images[..., 4:8])


def test_the_seam_kernel_scales_with_the_matte_odd_and_never_below_the_setting():
    matting = AlphaMatting(seam_kernel_size=3)
    assert [matting.seam_kernel_at(scale) for scale in (0.25, 1.0, 2.0, 2.7, 8.0)] == [3, 3, 7, 9, 25]


def test_empty_mask_returns_input_exactly():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    edited, matte = AlphaMatting()(images, torch.zeros_like(images), torch.zeros(2, 1, 16, 16))
    assert torch.equal(edited, images) and not matte.any()


def test_default_kernel_size_is_odd_and_scales():
    assert [default_kernel_size(side) for side in (16, 64, 256, 1024)] == [3, 5, 17, 65]


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"kernel_size": 4}, "matting.kernel_size"),
        ({"kernel_size": 0}, "matting.kernel_size"),
        ({"seam_kernel_size": 2}, "matting.seam_kernel_size"),
        ({"sigma": -1.0}, "matting.sigma"),
        ({"seam_strength": 1.5}, "matting.seam_strength"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        AlphaMatting(**kwargs)


def test_the_separable_blur_equals_torchvisions_gaussian_blur():
    from torchvision.transforms.functional import gaussian_blur as torchvision_blur

    from l2sae.editing.matting import gaussian_blur

    images = torch.rand(2, 3, 40, 33, generator=torch.Generator().manual_seed(0))
    for size, sigma in ((17, None), (5, None), (3, 0.7), (9, 2.0)):
        reference = torchvision_blur(images, [size, size], None if sigma is None else [sigma, sigma])
        assert (gaussian_blur(images, size, sigma) - reference).abs().max() < 2e-6
