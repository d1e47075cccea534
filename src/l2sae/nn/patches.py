"""Random patch crops for the co-occurrence discriminator (official ``util.apply_random_crop``)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def random_patch_crops(
    images: Tensor,
    patch_size: int,
    num_crops: int = 8,
    min_scale: float = 0.125,
    max_scale: float = 0.25,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop ``num_crops`` randomly placed, scaled and h-flipped patches per image.

    images B x C x H x W -> crops B x T x C x P x P (bilinear, zeros outside). Each crop covers a
    fraction in [min_scale, max_scale] of the image side, drawn independently for x and y.
    Draws, in this order and from ``generator`` (default: the global RNG on the images' device):
    flip (B*T x 1 x 1 x 1), scale (B*T x 1 x 1 x 2), offset (B*T x 1 x 1 x 2) - the same
    stream as the official code, so a seeded call reproduces its crops.
    """
    n = images.shape[0] * num_crops
    dev, dtype = images.device, images.dtype

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, device=dev, generator=generator).to(dtype)

    flip = torch.round(uniform(n, 1, 1, 1)) * 2 - 1
    scale = uniform(n, 1, 1, 2) * (max_scale - min_scale) + min_scale
    offset = (uniform(n, 1, 1, 2) * 2 - 1) * (1 - scale)
    line = torch.linspace(-1.0, 1.0, patch_size, device=dev, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(line, line, indexing="ij")
    unit_grid = torch.stack([grid_x.expand(n, -1, -1) * flip[..., 0], grid_y.expand(n, -1, -1)], dim=-1)
    tiled = images.unsqueeze(1).expand(-1, num_crops, -1, -1, -1).flatten(0, 1)
    crops = F.grid_sample(tiled, unit_grid * scale + offset, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.view(images.shape[0], num_crops, *crops.shape[1:])
