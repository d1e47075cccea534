"""Edit leakage: how much an edit changes pixels outside the region it was asked to change.

The score is the mean absolute change |edit - input| (in [-1, 1] image units, averaged over the
colour channels) over the pixels outside the region's ground-truth mask, over the pixels inside
it, and their ratio outside / inside (0 for a perfectly local edit; lower is better).
"""

from __future__ import annotations

import torch
from torch import Tensor


class EditLeakage:
    """Accumulates changed amount and area outside / inside the ROI over many (input, edit) pairs.

    Means are pixel-weighted over the whole set: sum of changes / number of pixels.
    """

    def __init__(self) -> None:
        self.change_outside = 0.0
        self.area_outside = 0.0
        self.change_inside = 0.0
        self.area_inside = 0.0
        self.num_pairs = 0

    @torch.no_grad()
    def update(self, inputs: Tensor, edits: Tensor, roi_mask: Tensor) -> None:
        """``inputs``, ``edits``: B x 3 x H x W in [-1, 1]; ``roi_mask``: B x 1 x H x W ground truth in [0, 1]."""
        if inputs.shape != edits.shape or roi_mask.shape != (inputs.shape[0], 1, *inputs.shape[2:]):
            raise ValueError(
                f"shapes do not match: inputs {tuple(inputs.shape)}, edits {tuple(edits.shape)}, "
                f"roi_mask {tuple(roi_mask.shape)} (expected B x 1 x H x W)"
            )
        change = (edits - inputs).abs().mean(dim=1, keepdim=True).double()
        inside = (roi_mask > 0.5).double()
        self.change_inside += float((change * inside).sum())
        self.area_inside += float(inside.sum())
        self.change_outside += float((change * (1 - inside)).sum())
        self.area_outside += float((1 - inside).sum())
        self.num_pairs += inputs.shape[0]

    def compute(self) -> dict[str, float | int | None]:
        """``leakage_outside``, ``leakage_inside``, ``leakage_ratio`` (None where undefined), ``leakage_pairs``."""
        outside = self.change_outside / self.area_outside if self.area_outside else None
        inside = self.change_inside / self.area_inside if self.area_inside else None
        ratio = outside / inside if outside is not None and inside else None
        return {
            "leakage_outside": outside,
            "leakage_inside": inside,
            "leakage_ratio": ratio,
            "leakage_pairs": self.num_pairs,
        }
