"""All scores of an evaluation, by method and region: FID, LPIPS, edit leakage, mask IoU, time per edit.

Every method's edits of region r count in the group ``(method, r)`` and in ``(method, "all")``.
Edits of another size than their inputs are resized to the inputs' (the evaluation) size first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms.functional import resize

from l2sae.evaluation.fid import GroupedFID
from l2sae.evaluation.leakage import EditLeakage
from l2sae.evaluation.lpips_metric import lpips_distance
from l2sae.evaluation.masks import RegionIoU
from l2sae.evaluation.report import ALL_REGIONS, COLUMNS
from l2sae.evaluation.timing import TimingStats


class RunningMean:
    """Mean of many values added in batches; ``mean`` is None before any."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, values: Tensor) -> None:
        self.total += float(values.double().sum())
        self.count += values.numel()

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def to_size(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Images B x 3 x h x w resized (bilinear, antialiased) to ``size`` = (H, W); unchanged when already that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return resize(images, list(size), antialias=True).clamp(-1, 1)


class EditScores:
    """Accumulates the scores of ``methods`` over ``rois`` batch by batch; :meth:`rows` gives the results.

    fid_extractor: uint8 images -> features (see :func:`l2sae.evaluation.fid.inception_features`);
    lpips_model: from :func:`l2sae.evaluation.lpips_metric.build_lpips`. Either may be None: that metric
    is not computed and its columns stay None.
    """

    def __init__(
        self,
        methods: Sequence[str],
        rois: Sequence[str],
        fid_extractor: nn.Module | None,
        lpips_model: nn.Module | None,
    ) -> None:
        self.methods, self.rois = tuple(methods), tuple(rois)
        self.groups = [(method, region) for method in self.methods for region in (*self.rois, ALL_REGIONS)]
        self.fid = None if fid_extractor is None else GroupedFID(fid_extractor, self.groups)
        self.lpips_model = lpips_model
        self.lpips = {group: RunningMean() for group in self.groups}
        self.leakage = {group: EditLeakage() for group in self.groups}
        self.recon_lpips = {method: RunningMean() for method in self.methods}
        self.mask_iou: dict[str, RegionIoU] = {}
        self.timing: dict[tuple[str, str], TimingStats] = {}

    def add_real(self, images: Tensor) -> None:
        """The evaluation images B x 3 x H x W in [-1, 1] (the FID reference)."""
        if self.fid is not None:
            self.fid.add_real(images)

    @torch.no_grad()
    def add_edits(self, method: str, roi: str, inputs: Tensor, edits: Tensor, roi_mask: Tensor) -> None:
        """``method``'s edits of region ``roi``: inputs and edits B x 3 x H x W in [-1, 1], the region's
        ground-truth mask B x 1 x H x W in [0, 1] (at the inputs' size)."""
        edits = to_size(edits.to(inputs.device), inputs.shape[-2:])
        groups = [(method, roi), (method, ALL_REGIONS)]
        if self.fid is not None:
            self.fid.add(edits, groups)
        if self.lpips_model is not None:
            distances = lpips_distance(self.lpips_model, inputs, edits)
            for group in groups:
                self.lpips[group].add(distances)
        for group in groups:
            self.leakage[group].update(inputs, edits, roi_mask)

    @torch.no_grad()
    def add_reconstructions(self, method: str, inputs: Tensor, reconstructions: Tensor) -> None:
        """``method``'s reconstructions (inversions) of the inputs, both B x 3 x H x W in [-1, 1]."""
        if self.lpips_model is None:
            return
        reconstructions = to_size(reconstructions.to(inputs.device), inputs.shape[-2:])
        self.recon_lpips[method].add(lpips_distance(self.lpips_model, inputs, reconstructions))

    def add_masks(self, method: str, predicted: Tensor, target: Tensor) -> None:
        """``method``'s region masks and the ground truth, B x R x H x W in [0, 1], regions in ``rois`` order."""
        if method not in self.mask_iou:
            self.mask_iou[method] = RegionIoU(self.rois)
        self.mask_iou[method].update(to_size(predicted, target.shape[-2:]), target)

    def set_timing(self, method: str, region: str, seconds: Sequence[float] | TimingStats) -> None:
        """Time per edit of ``method`` on ``region`` (or ``"all"``): measured seconds or ready stats."""
        stats = seconds if isinstance(seconds, TimingStats) else TimingStats.from_seconds(seconds)
        self.timing[(method, region)] = stats

    def rows(self) -> list[dict]:
        """One result row per (method, region), regions in order then ``"all"``; every column of
        :data:`l2sae.evaluation.report.COLUMNS`, None where a metric does not apply or is not computed."""
        fid = {} if self.fid is None else self.fid.compute()
        rows = []
        for method, region in self.groups:
            group = (method, region)
            lpips, recon = self.lpips[group], self.recon_lpips[method]
            row = dict.fromkeys(COLUMNS) | {"method": method, "region": region, **fid.get(group, {})}
            if self.lpips_model is not None:
                row.update(lpips=lpips.mean, lpips_pairs=lpips.count)
            if region == ALL_REGIONS and recon.count:
                row.update(recon_lpips=recon.mean, recon_pairs=recon.count)
            row.update(self.leakage[group].compute())
            if method in self.mask_iou:
                iou = self.mask_iou[method].compute()
                row.update(mask_iou=iou["mean" if region == ALL_REGIONS else region], mask_iou_images=iou["images"])
            if group in self.timing:
                row.update({f"time_{name}": value for name, value in self.timing[group].to_dict().items()})
            rows.append(row)
        return rows
