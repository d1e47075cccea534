"""Intersection over union of predicted ROI masks against the ground truth, per region and mean."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchmetrics import Metric

if TYPE_CHECKING:
    from l2sae.editing import L2SAEEditor


class RegionIoU:
    """Dataset-level IoU per region: intersections and unions are summed over all images, then divided.

    A region absent from every predicted and ground-truth mask has no IoU (NaN, left out of the mean).
    """

    def __init__(self, rois: Sequence[str], threshold: float = 0.5) -> None:
        self.rois = tuple(rois)
        self.threshold = threshold
        self.intersection = torch.zeros(len(self.rois), dtype=torch.float64)
        self.union = torch.zeros(len(self.rois), dtype=torch.float64)
        self.num_images = 0

    @torch.no_grad()
    def update(self, predicted: Tensor, target: Tensor) -> None:
        """Masks B x R x H x W in [0, 1], regions in the order of ``rois``; ``predicted`` is thresholded."""
        if predicted.shape != target.shape or predicted.shape[1] != len(self.rois):
            raise ValueError(
                f"mask shapes {tuple(predicted.shape)} and {tuple(target.shape)} differ or do not have "
                f"{len(self.rois)} regions ({', '.join(self.rois)})"
            )
        predicted, target = predicted > self.threshold, target > 0.5
        self.intersection += (predicted & target).sum(dim=(0, 2, 3)).cpu()
        self.union += (predicted | target).sum(dim=(0, 2, 3)).cpu()
        self.num_images += predicted.shape[0]

    def compute(self) -> dict[str, float | int | None]:
        """``{roi: iou, ..., "mean": mean over regions, "images": count}``; None where undefined."""
        per_region = (self.intersection / self.union).tolist()  # 0 / 0 = NaN: region never present
        defined = [value for value in per_region if not math.isnan(value)]
        result: dict[str, float | int | None] = {
            roi: None if math.isnan(value) else value for roi, value in zip(self.rois, per_region, strict=True)
        }
        result["mean"] = sum(defined) / len(defined) if defined else None
        result["images"] = self.num_images
        return result


class SoftRegionIoU(Metric):
    """Dataset-level IoU per region of masks or mattes in [0, 1]: ``sum(min(a, b)) / sum(max(a, b))`` over all
    pixels of all images (the hard IoU for masks in {0, 1}); summed across processes. ``compute``: R values."""

    full_state_update = False

    def __init__(self, num_regions: int) -> None:
        super().__init__()
        self.add_state("intersection", torch.zeros(num_regions, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("union", torch.zeros(num_regions, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, target: Tensor) -> None:
        """predicted, target: B x R x H x W in [0, 1]."""
        self.intersection += torch.minimum(predicted, target).sum(dim=(0, 2, 3)).double()
        self.union += torch.maximum(predicted, target).sum(dim=(0, 2, 3)).double()

    def compute(self) -> Tensor:
        return self.intersection / self.union


@torch.no_grad()
def fast_mask_agreement(
    fast: L2SAEEditor, full: L2SAEEditor, batches: Iterable[Mapping[str, Tensor]]
) -> tuple[dict[str, float], dict[str, float]]:
    """How ``fast``'s masks (its mask head) agree with ``full``'s on the images of ``batches`` (``{"image":
    B x 3 x H x W}``), per region of ``fast``'s slicing: (matte IoU, i.e. :class:`SoftRegionIoU` of the two masks
    after ``fast``'s matte blur, as training logs ``val/fast_matte_iou_<roi>``; hard-mask IoU)."""
    rois = fast.slicing.roi_names
    mattes, masks = (SoftRegionIoU(len(rois)).to(fast.device) for _ in range(2))  # where the masks are made
    for batch in batches:
        pair = fast.masks(batch["image"], rois), full.masks(batch["image"], rois)
        masks.update(*pair)
        mattes.update(*(fast.matting.matte(m.flatten(0, 1)[:, None]).view_as(m) for m in pair))
    return dict(zip(rois, mattes.compute().tolist())), dict(zip(rois, masks.compute().tolist()))
