"""Fréchet Inception Distance of edited images against the real evaluation images (torchmetrics).

One evaluation compares many sets of edits (per method and region) with the same real images.
:class:`GroupedFID` runs each image through the feature extractor once and keeps one
torchmetrics ``FrechetInceptionDistance`` per group over those features, on the CPU.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from l2sae.evaluation.weights import explain_download_failure, local_weights

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_KEY = "metrics.fid.feature_extractor_weights_path"


def to_uint8(images: Tensor) -> Tensor:
    """Images B x 3 x H x W in [-1, 1] -> uint8 in [0, 255] (rounded), the input of the FID Inception net."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def inception_features(
    weights_path: str | Path | None = None,
    antialias: bool = True,
    num_features: int = 2048,
    key: str = WEIGHTS_KEY,
) -> nn.Module:
    """torchmetrics' FID Inception-v3: uint8 images B x 3 x H x W -> features B x num_features.

    It resizes to 299 x 299 itself: bilinear with ``antialias=True`` (torchmetrics' default), or
    TensorFlow-1 style without antialiasing (``False``, as the original FID code); FID moves with it.
    Weights come from ``weights_path``, else the torch hub cache, else a download.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = local_weights(INCEPTION_WEIGHTS, weights_path, key)
    with explain_download_failure(INCEPTION_WEIGHTS, key):
        return NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(num_features)],
            feature_extractor_weights_path=None if path is None else str(path),
            antialias=antialias,
        )


class _GivenFeatures(nn.Module):
    """Identity "extractor": lets FrechetInceptionDistance accumulate features computed upstream (B x D)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class GroupedFID:
    """FID of several groups of generated images, each against the same real images.

    ``extractor`` maps uint8 images B x 3 x H x W to features B x D (see :func:`inception_features`;
    tests inject a small module). Images are given in [-1, 1]. Real images count in every group.
    Each group keeps two D x D float64 sums on the CPU (64 MB at D = 2048).
    """

    def __init__(self, extractor: nn.Module, groups: Iterable[Hashable]) -> None:
        self.extractor = extractor
        self.groups = tuple(groups)
        self._metrics: dict[Hashable, FrechetInceptionDistance] = {}
        self.num_real = 0

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        features = self.extractor(to_uint8(images)).reshape(images.shape[0], -1).cpu().double()
        if not self._metrics:
            dim = features.shape[1]
            self._metrics = {group: FrechetInceptionDistance(feature=_GivenFeatures(dim)) for group in self.groups}
        return features

    def add_real(self, images: Tensor) -> None:
        """Real images B x 3 x H x W in [-1, 1]."""
        features = self._features(images)
        for metric in self._metrics.values():
            metric.update(features, real=True)
        self.num_real += images.shape[0]

    def add(self, images: Tensor, groups: Iterable[Hashable]) -> None:
        """Generated images B x 3 x H x W in [-1, 1], counted in each of ``groups`` (features computed once)."""
        groups = tuple(groups)
        unknown = [group for group in groups if group not in self.groups]
        if unknown:
            raise KeyError(f"unknown FID groups {unknown}; known: {self.groups}")
        features = self._features(images)
        for group in groups:
            self._metrics[group].update(features, real=False)

    def compute(self) -> dict[Hashable, dict[str, float | int | None]]:
        """Per group: ``fid`` (None with fewer than 2 real or generated images) and ``fid_images`` (generated)."""
        results = {}
        for group in self.groups:
            metric = self._metrics.get(group)
            count = 0 if metric is None else int(metric.fake_features_num_samples)
            value = float(metric.compute()) if count >= 2 and self.num_real >= 2 else None
            results[group] = {"fid": value, "fid_images": count}
        return results
