"""Image similarity over part of the image: PSNR, SSIM and LPIPS maps averaged over a mask.

The maps are computed on the whole images, then averaged over the masked pixels only (never on
images with the rest blacked out): SSIM's Gaussian-window map, LPIPS' spatial map
(``lpips`` with ``spatial=True``, upsampled to the image size) and the squared error. Near the mask's
edge SSIM's 11 px window and LPIPS' receptive fields still see the pixels across it.

Used for preservation outside the edited region (:class:`Preservation`), for the region's boundary
band, and inside the region for diversity and the distance to a swap's reference.
"""

from __future__ import annotations

import copy
import math

import lpips
import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_KERNEL = 11  # the Gaussian window of Wang et al. (2004): 11 x 11, sigma 1.5
SSIM_SIGMA = 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (k L)^2 for data range L = 1


def to_unit(images: Tensor) -> Tensor:
    """Images in [-1, 1] -> [0, 1] (PSNR and SSIM are defined there, with data range 1)."""
    return (images.clamp(-1, 1) + 1) / 2


def squared_error_map(images: Tensor, others: Tensor) -> Tensor:
    """Per-pixel squared error on the [0, 1] scale, averaged over the colour channels: B x 1 x H x W."""
    return (to_unit(images).double() - to_unit(others).double()).pow(2).mean(dim=1, keepdim=True)


def gaussian_window_matrix(side: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """side x side: column j holds the weights of SSIM's 1-d Gaussian window (sigma 1.5, 11 taps, normalised)
    around pixel j, the taps beyond the border reflected back inside (reflection padding, edge not repeated)."""
    if side <= SSIM_KERNEL // 2:
        raise ValueError(f"SSIM: images need sides of at least {SSIM_KERNEL // 2 + 1} px, got {side}")
    taps = torch.arange(SSIM_KERNEL, dtype=dtype, device=device) - (SSIM_KERNEL - 1) / 2
    window = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    window = window / window.sum()
    centres = torch.arange(side, device=device)[:, None]
    sources = (centres + torch.arange(SSIM_KERNEL, device=device) - SSIM_KERNEL // 2).abs()
    sources = torch.where(sources > side - 1, 2 * (side - 1) - sources, sources)
    matrix = torch.zeros(side, side, dtype=dtype, device=device)
    return matrix.index_put_((sources, centres.expand_as(sources)), window.expand_as(sources), accumulate=True)


def gaussian_window_mean(maps: Tensor) -> Tensor:
    """Each map of ... x H x W filtered by SSIM's 11 x 11 Gaussian window with reflection padding: ... x H x W.

    The window is separable and the padded 1-d filter is a linear map, so it runs as two matrix products
    (BLAS), far faster in float64 than a grouped 2-d convolution (README, Evaluate; ``bench/ssim_map.py``).
    """
    height, width = maps.shape[-2:]
    rows = maps @ gaussian_window_matrix(width, maps.dtype, maps.device)
    return gaussian_window_matrix(height, maps.dtype, maps.device).T @ rows


def ssim_map(images: Tensor, others: Tensor) -> Tensor:
    """SSIM per pixel (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5, data range 1, reflection padding at
    the border), averaged over the colour channels: B x 1 x H x W from two batches B x 3 x H x W in [-1, 1].

    Float64 throughout, as torchmetrics' ``structural_similarity_index_measure`` computes it (equal to 1e-12,
    tested; variances clamped at 0 alike), but with the separable window of :func:`gaussian_window_mean`.
    """
    x, y = to_unit(images).double(), to_unit(others).double()
    moments = gaussian_window_mean(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mu_x, mu_y, xx, yy, xy = moments.chunk(5, dim=1)
    variance_x, variance_y = (xx - mu_x**2).clamp(min=0), (yy - mu_y**2).clamp(min=0)
    covariance = xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)
    structure = (2 * covariance + SSIM_C2) / (variance_x + variance_y + SSIM_C2)
    return (luminance * structure).mean(dim=1, keepdim=True)


def spatial_lpips(model: lpips.LPIPS) -> lpips.LPIPS:
    """The same LPIPS network (shared weights) returning its spatial map B x 1 x H x W instead of the mean."""
    spatial = copy.copy(model)  # a shallow copy: the layers and weights are the model's own
    spatial.spatial = True
    return spatial


@torch.no_grad()
def lpips_map(spatial_model: lpips.LPIPS, images: Tensor, others: Tensor) -> Tensor:
    """LPIPS per pixel, B x 1 x H x W, from :func:`spatial_lpips`'s model and two batches in [-1, 1]."""
    return spatial_model(images, others).double()


def psnr(mean_squared_error: float | None) -> float | None:
    """PSNR in dB of a mean squared error on the [0, 1] scale: inf for 0, None for None."""
    if mean_squared_error is None:
        return None
    return math.inf if mean_squared_error == 0 else -10 * math.log10(mean_squared_error)


def boundary_band(region: Tensor, width: int) -> Tensor:
    """The pixels within ``width`` px (a square neighbourhood) of the region but outside it.

    region: B x 1 x H x W in {0, 1} -> the band, B x 1 x H x W in {0, 1} (empty for width 0).
    """
    if width <= 0:
        return torch.zeros_like(region)
    dilated = F.max_pool2d(region, kernel_size=2 * width + 1, stride=1, padding=width)
    return dilated * (1 - region)


def default_band_width(side: int) -> int:
    """The band's default width: 1/32 of the image side, at least 1 px (2 px at 64 px, 16 px at 512 px)."""
    return max(1, round(side / 32))


def similarity_maps(images: Tensor, others: Tensor, spatial_model: lpips.LPIPS | None = None) -> dict[str, Tensor]:
    """Per-pixel maps B x 1 x H x W of two batches B x 3 x H x W in [-1, 1]: ``squared_error``, ``ssim`` and,
    given :func:`spatial_lpips`'s model, ``lpips`` (compute once, add to many groups)."""
    maps = {"squared_error": squared_error_map(images, others), "ssim": ssim_map(images, others)}
    if spatial_model is not None:
        maps["lpips"] = lpips_map(spatial_model, images, others)
    return maps


class MaskedMean:
    """Pixel-weighted mean of per-pixel maps over masks, pooled over every pair added.

    ``sums[name] / area``: each map's sum over the masked pixels of all pairs divided by their number.
    Pairs whose mask is empty add nothing (but count in ``pairs``).
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.area = 0.0
        self.pairs = 0

    def add(self, maps: dict[str, Tensor], mask: Tensor) -> None:
        """``maps``: name -> B x 1 x H x W; ``mask``: B x 1 x H x W in [0, 1] (a weight per pixel)."""
        mask = mask.double()
        for name, values in maps.items():
            self.sums[name] = self.sums.get(name, 0.0) + float((values * mask).sum())
        self.area += float(mask.sum())
        self.pairs += mask.shape[0]

    def mean(self, name: str) -> float | None:
        """The masked mean of map ``name``; None before any masked pixel or when it was never added."""
        if not self.area or name not in self.sums:
            return None
        return self.sums[name] / self.area


class Preservation:
    """How much an edit kept of the input outside the region and in a band along the region's edge.

    For every (input, edit) pair: PSNR (from the pooled mean squared error), SSIM and LPIPS (their maps'
    pooled means) over the pixels outside the region, and over :func:`boundary_band` (``band_width`` px,
    None: :func:`default_band_width` of the image side). LPIPS stays None where the maps have none.
    """

    AREAS = ("outside", "band")

    def __init__(self, band_width: int | None = None) -> None:
        self.band_width = band_width
        self.means = {area: MaskedMean() for area in self.AREAS}

    def add(self, maps: dict[str, Tensor], region: Tensor) -> None:
        """Add the :func:`similarity_maps` of (input, edit) pairs whose region is ``region``, B x 1 x H x W in [0, 1]
        (thresholded at 0.5)."""
        region = (region > 0.5).double()
        width = default_band_width(region.shape[-1]) if self.band_width is None else self.band_width
        self.means["outside"].add(maps, 1 - region)
        self.means["band"].add(maps, boundary_band(region, width))

    def compute(self) -> dict[str, float | int | None]:
        """``psnr_<area>`` (dB, inf where nothing changed), ``ssim_<area>``, ``lpips_<area>`` for area in
        outside, band; and ``preservation_pairs``."""
        results: dict[str, float | int | None] = {}
        for area, mean in self.means.items():
            results[f"psnr_{area}"] = psnr(mean.mean("squared_error"))
            results[f"ssim_{area}"] = mean.mean("ssim")
            results[f"lpips_{area}"] = mean.mean("lpips")
        results["preservation_pairs"] = self.means["outside"].pairs
        return results
