"""Masked PSNR / SSIM / LPIPS (preservation outside the region, the boundary band) against direct computations."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from l2sae.evaluation.lpips_metric import build_lpips
from l2sae.evaluation.masked import (
    MaskedMean,
    Preservation,
    boundary_band,
    default_band_width,
    lpips_map,
    similarity_maps,
    spatial_lpips,
    ssim_map,
    to_unit,
)

SIZE = 32


@pytest.fixture(scope="module")
def lpips_model():
    return build_lpips(random_backbone=True)


def square_region(top=8, bottom=16, left=8, right=16, size=SIZE) -> torch.Tensor:
    region = torch.zeros(1, 1, size, size)
    region[..., top:bottom, left:right] = 1
    return region


def test_boundary_band_is_the_dilated_region_minus_the_region():
    band = boundary_band(square_region(), 2)
    expected = torch.zeros(1, 1, SIZE, SIZE)
    expected[..., 6:18, 6:18] = 1
    expected[..., 8:16, 8:16] = 0
    assert torch.equal(band, expected)
    assert boundary_band(square_region(), 0).sum() == 0
    assert default_band_width(64) == 2 and default_band_width(512) == 16 and default_band_width(16) == 1


def test_a_change_only_inside_the_region_is_infinite_psnr_outside(lpips_model):
    inputs = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    region = square_region().expand(2, 1, -1, -1)
    edits = torch.where(region > 0, -inputs, inputs)
    maps = similarity_maps(inputs, edits, spatial_lpips(lpips_model))
    preservation = Preservation(band_width=2)
    preservation.add(maps, region)
    scores = preservation.compute()
    assert scores["psnr_outside"] == math.inf and scores["psnr_band"] == math.inf
    assert scores["preservation_pairs"] == 2
    # SSIM's window and LPIPS' receptive field see the change across the edge: below 1 / above 0 outside,
    far = torch.ones(2, 1, SIZE, SIZE)
    far[..., 2:22, 2:22] = 0  # but SSIM is exactly 1 more than 5 px (its window's radius) away from it
    far_only = MaskedMean()
    far_only.add(maps, far)
    assert far_only.mean("ssim") == pytest.approx(1.0, abs=1e-12) and far_only.mean("squared_error") == 0
    assert scores["ssim_outside"] < 1 and scores["ssim_band"] < scores["ssim_outside"]
    assert 0 < scores["lpips_outside"]


def test_a_change_only_outside_gives_the_expected_psnr_and_ssim():
    inputs = torch.full((1, 3, SIZE, SIZE), -0.2)
    region = square_region()
    edits = torch.where(region > 0, inputs, inputs + 0.2)  # +0.1 on the [0, 1] scale outside
    preservation = Preservation(band_width=1)
    preservation.add(similarity_maps(inputs, edits), region)
    scores = preservation.compute()
    assert scores["psnr_outside"] == pytest.approx(20.0)  # -10 log10(0.1^2)
    assert scores["psnr_band"] == pytest.approx(20.0)
    assert scores["lpips_outside"] is None  # no LPIPS network given
    # far from the region both images are flat: SSIM is the luminance term alone, (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.4, 0.5, 0.01**2
    far = torch.zeros(1, 1, SIZE, SIZE)
    far[..., 24:, 24:] = 1
    far_only = MaskedMean()
    far_only.add(similarity_maps(inputs, edits), far)
    assert far_only.mean("ssim") == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_ssim_map_matches_scikit_image_and_masked_means_weight_pixels():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1
    edits = (inputs + 0.3 * torch.randn(1, 3, SIZE, SIZE, generator=generator)).clamp(-1, 1)
    ours = ssim_map(inputs, edits)[0, 0].numpy()
    _, reference = structural_similarity(
        ((inputs[0] + 1) / 2).permute(1, 2, 0).double().numpy(),
        ((edits[0] + 1) / 2).permute(1, 2, 0).double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
        full=True,
    )
    interior = slice(5, SIZE - 5)  # the borders are padded differently (reflect vs. symmetric)
    np.testing.assert_allclose(ours[interior, interior], reference.mean(axis=2)[interior, interior], atol=1e-6)
    mask = square_region(4, 28, 4, 28)
    mean = MaskedMean()
    mean.add({"ssim": ssim_map(inputs, edits)}, mask)
    assert mean.mean("ssim") == pytest.approx(float(ours[4:28, 4:28].mean()))
    assert mean.mean("lpips") is None and MaskedMean().mean("ssim") is None


def test_spatial_lpips_shares_the_weights_and_averages_near_the_scalar_distance(lpips_model):
    inputs = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    edits = inputs.flip(-1)
    spatial = spatial_lpips(lpips_model)
    assert spatial.net is lpips_model.net and not lpips_model.spatial  # the model itself is unchanged
    maps = lpips_map(spatial, inputs, edits)
    assert maps.shape == (2, 1, SIZE, SIZE) and lpips_map(spatial, inputs, inputs).abs().max() < 1e-6
    scalar = lpips_model(inputs, edits).flatten().double()
    torch.testing.assert_close(maps.mean(dim=(1, 2, 3)), scalar, rtol=0.15, atol=0)  # upsampled vs. averaged


def test_ssim_map_equals_torchmetrics_float64_map_also_on_non_square_images():
    generator = torch.Generator().manual_seed(3)
    inputs = torch.rand(2, 3, 40, 56, generator=generator) * 2 - 1
    edits = (inputs + 0.4 * torch.randn(2, 3, 40, 56, generator=generator)).clamp(-1, 1)
    _, full = structural_similarity_index_measure(
        to_unit(inputs).double(), to_unit(edits).double(), sigma=1.5, data_range=1.0, return_full_image=True
    )
    assert torch.allclose(ssim_map(inputs, edits), full.mean(dim=1, keepdim=True), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="at least 6 px"):
        ssim_map(inputs[..., :5, :], edits[..., :5, :])
