"""Helpers of the evaluation tests (no tests here): a tiny deterministic FID extractor, random images."""

from __future__ import annotations

import torch
from torch import nn


class ChannelStatistics(nn.Module):
    """Deterministic tiny FID extractor: uint8 B x 3 x H x W -> per-channel mean and std (B x 6)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float().flatten(2) / 255
        return torch.cat([pixels.mean(dim=2), pixels.std(dim=2)], dim=1)


def random_images(count: int, size: int = 16, brightness: float = 0.0) -> torch.Tensor:
    """``count`` x 3 x ``size`` x ``size`` uniform noise in [-1, 1], shifted by ``brightness``."""
    return (torch.rand(count, 3, size, size) * 1.6 - 0.8 + brightness).clamp(-1, 1)
