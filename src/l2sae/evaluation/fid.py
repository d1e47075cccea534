"""Fréchet and Kernel Inception Distances of edited images against the real evaluation images (torchmetrics).

One evaluation compares many sets of edits (per method and region) with the same real images.
:class:`GroupedFID` runs each image through the feature extractor once and keeps one torchmetrics
``FrechetInceptionDistance`` and one ``KernelInceptionDistance`` per group over those features, on the
CPU. KID (Binkowski et al., 2018) is unbiased, so it stays meaningful on small splits where FID is
biased upwards; both use the same Inception features.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Hashable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from l2sae.utils.pretrained import UnsafeWeightsError, weights

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS
INCEPTION_KEYS = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")  # first and last
WEIGHTS_KEY = "metrics.fid.feature_extractor_weights_path"
KID_SUBSETS = 100  # torchmetrics' defaults: 100 random subsets of up to 1000 images each
KID_SUBSET_SIZE = 1000
KID_SEED = 0  # the subsets are drawn from this seed, so KID is reproducible (the global RNG is left alone)


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
    Weights come from ``weights_path``, else the torch hub cache, else a download, and are read weights-only
    (:mod:`l2sae.utils.pretrained`): torch-fidelity, which would unpickle the file, only sees the tensors.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    state = weights(INCEPTION_WEIGHTS, INCEPTION_URL, weights_path, key, INCEPTION_KEYS)
    checked = io.BytesIO()  # torch-fidelity unpickles what it is given: give it only the tensors read safely
    torch.save(state, checked)
    checked.seek(0)
    try:
        return NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(num_features)],
            feature_extractor_weights_path=checked,
            antialias=antialias,
        )
    except RuntimeError as error:  # load_state_dict: keys or shapes that do not fit
        source = weights_path or INCEPTION_WEIGHTS
        detail = " ".join(str(error).split())
        raise UnsafeWeightsError(f"{source}: not the FID Inception weights {INCEPTION_WEIGHTS} ({detail})") from error


class _GivenFeatures(nn.Module):
    """Identity "extractor": lets FrechetInceptionDistance accumulate features computed upstream (B x D)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class GroupedFID:
    """FID and KID of several groups of generated images, each against the same real images.

    ``extractor`` maps uint8 images B x 3 x H x W to features B x D (see :func:`inception_features`;
    tests inject a small module). Images are given in [-1, 1]. Real images count in every group.
    Each group keeps two D x D float64 sums on the CPU (64 MB at D = 2048) and, for KID, references to
    the features. KID averages ``kid_subsets`` subsets of ``min(kid_subset_size, real, generated)`` images.
    """

    def __init__(
        self,
        extractor: nn.Module,
        groups: Iterable[Hashable],
        kid_subsets: int = KID_SUBSETS,
        kid_subset_size: int = KID_SUBSET_SIZE,
    ) -> None:
        self.extractor = extractor
        self.groups = tuple(groups)
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self._metrics: dict[Hashable, tuple[FrechetInceptionDistance, KernelInceptionDistance]] = {}
        self.num_real = 0

    def _new_metrics(self, dim: int) -> tuple[FrechetInceptionDistance, KernelInceptionDistance]:
        with warnings.catch_warnings():  # KID's warning that it keeps the features: they are referenced, not copied
            warnings.filterwarnings("ignore", message=".*will save all extracted features", category=UserWarning)
            kid = KernelInceptionDistance(feature=_GivenFeatures(dim), subsets=self.kid_subsets)
        return FrechetInceptionDistance(feature=_GivenFeatures(dim)), kid

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        features = self.extractor(to_uint8(images)).reshape(images.shape[0], -1).cpu().double()
        if not self._metrics:
            self._metrics = {group: self._new_metrics(features.shape[1]) for group in self.groups}
        return features

    def add_real(self, images: Tensor) -> None:
        """Real images B x 3 x H x W in [-1, 1]."""
        features = self._features(images)
        for metrics in self._metrics.values():
            for metric in metrics:
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
            for metric in self._metrics[group]:
                metric.update(features, real=False)

    def _kid(self, metric: KernelInceptionDistance | None, count: int) -> dict[str, float | int | None]:
        subset_size = min(self.kid_subset_size, count, self.num_real)
        if metric is None or subset_size < 2:
            return {"kid": None, "kid_std": None, "kid_subset_size": None}
        metric.subset_size = subset_size  # adapted to small splits (torchmetrics refuses more than there are)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(KID_SEED)
            mean, std = metric.compute()
        return {"kid": float(mean), "kid_std": float(std), "kid_subset_size": subset_size}

    def compute(self) -> dict[Hashable, dict[str, float | int | None]]:
        """Per group: ``fid`` (None with fewer than 2 real or generated images) and ``fid_images`` (generated);
        ``kid`` and ``kid_std`` (mean and standard deviation over the subsets) and ``kid_subset_size``."""
        results = {}
        for group in self.groups:
            fid, kid = self._metrics.get(group, (None, None))
            count = 0 if fid is None else int(fid.fake_features_num_samples)
            value = float(fid.compute()) if count >= 2 and self.num_real >= 2 else None
            results[group] = {"fid": value, "fid_images": count}
            results[group] |= self._kid(kid, count)
        return results
