"""All scores of an evaluation, by method and region: the paper's FID, LPIPS and time per edit; edit leakage,
mask IoU; KID, preservation outside the region and in its boundary band, identity, diversity of random
styles and the distance of a style swap to its reference.

Every method's edits of region r count in the group ``(method, r)`` and in ``(method, "all")``.
Edits of another size than their inputs are resized to the inputs' (the evaluation) size first.
Region masks (the ground truth's; L2SAE's own matte on data without them) are B x 1 x H x W in [0, 1],
thresholded at 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms.functional import resize

from l2sae.evaluation.fid import KID_SUBSET_SIZE, KID_SUBSETS, GroupedFID
from l2sae.evaluation.identity import IdentityScores
from l2sae.evaluation.leakage import EditLeakage
from l2sae.evaluation.lpips_metric import lpips_distance
from l2sae.evaluation.masked import MaskedMean, Preservation, lpips_map, similarity_maps, spatial_lpips
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

    fid_extractor: uint8 images -> features (see :func:`l2sae.evaluation.fid.inception_features`), for FID
    and KID; lpips_model: from :func:`l2sae.evaluation.lpips_metric.build_lpips`; describer: images B x 3 x H x W
    -> B face descriptors or None (:class:`l2sae.evaluation.face_descriptor.FaceDescriber`). Each may be None: those metrics are not
    computed and their columns stay None. band_width: the boundary band's width in px (None: 1/32 of the side).
    """

    def __init__(
        self,
        methods: Sequence[str],
        rois: Sequence[str],
        fid_extractor: nn.Module | None,
        lpips_model: nn.Module | None,
        describer: Callable[[Tensor], list] | None = None,
        band_width: int | None = None,
        kid_subsets: int = KID_SUBSETS,
        kid_subset_size: int = KID_SUBSET_SIZE,
    ) -> None:
        self.methods, self.rois = tuple(methods), tuple(rois)
        self.groups = [(method, region) for method in self.methods for region in (*self.rois, ALL_REGIONS)]
        self.fid = None
        if fid_extractor is not None:
            self.fid = GroupedFID(fid_extractor, self.groups, kid_subsets, kid_subset_size)
        self.lpips_model = lpips_model
        self.spatial_lpips = None if lpips_model is None else spatial_lpips(lpips_model)
        self.describer = describer
        self.lpips = {group: RunningMean() for group in self.groups}
        self.leakage = {group: EditLeakage() for group in self.groups}
        self.preservation = {group: Preservation(band_width) for group in self.groups}
        self.identity = {group: IdentityScores() for group in self.groups}
        self.diversity = {group: MaskedMean() for group in self.groups}
        self.diversity_seeds: dict[tuple[str, str], int] = {}  # seeds per image
        self.diversity_images = dict.fromkeys(self.groups, 0)
        self.swap = {group: MaskedMean() for group in self.groups}
        self.recon_lpips = {method: RunningMean() for method in self.methods}
        self.mask_iou: dict[str, RegionIoU] = {}
        self.timing: dict[tuple[str, str], TimingStats] = {}

    def add_real(self, images: Tensor) -> None:
        """The evaluation images B x 3 x H x W in [-1, 1] (the FID reference)."""
        if self.fid is not None:
            self.fid.add_real(images)

    def describe(self, inputs: Tensor) -> list | None:
        """The inputs' face descriptors (None without a describer): compute once per batch, pass to
        :meth:`add_edits` for every method and region."""
        return None if self.describer is None else self.describer(inputs)

    @torch.no_grad()
    def add_edits(
        self,
        method: str,
        roi: str,
        inputs: Tensor,
        edits: Tensor,
        roi_mask: Tensor | None,
        input_faces: list | None = None,
        pool_distribution: bool = True,
    ) -> None:
        """``method``'s edits of region ``roi``: inputs and edits B x 3 x H x W in [-1, 1], the region's mask
        B x 1 x H x W in [0, 1] at the inputs' size (None: no region known, leakage and preservation are not
        scored); ``input_faces``: :meth:`describe` of the inputs (computed here when not given);
        ``pool_distribution`` False: the edits join FID/KID's all-regions set only by another call (edits that
        are the same for every region, the SAE's global edit, count once there: KID's estimate assumes distinct
        samples)."""
        edits = to_size(edits.to(inputs.device), inputs.shape[-2:])
        groups = [(method, roi), (method, ALL_REGIONS)]
        if self.fid is not None:
            self.fid.add(edits, groups if pool_distribution else groups[:1])
        if self.lpips_model is not None:
            distances = lpips_distance(self.lpips_model, inputs, edits)
            for group in groups:
                self.lpips[group].add(distances)
        maps = None if roi_mask is None else similarity_maps(inputs, edits, self.spatial_lpips)
        if self.describer is not None:
            input_faces = self.describe(inputs) if input_faces is None else input_faces
            edit_faces = self._describe_where(edits, [face is not None for face in input_faces])
        for group in groups:
            if roi_mask is not None:
                self.leakage[group].update(inputs, edits, roi_mask)
                self.preservation[group].add(maps, roi_mask)
            if self.describer is not None:
                self.identity[group].add(input_faces, edit_faces)

    def _describe_where(self, images: Tensor, wanted: Sequence[bool]) -> list:
        """The face descriptors of the images where ``wanted`` (no detection elsewhere: the pair is not scored)."""
        found = iter(self.describer(images[torch.tensor(wanted, dtype=torch.bool)]) if any(wanted) else ())
        return [next(found) if want else None for want in wanted]

    @torch.no_grad()
    def add_diversity(self, method: str, roi: str, edits: Sequence[Tensor], roi_mask: Tensor) -> None:
        """``method``'s edits of region ``roi`` of the same inputs with different random styles (seeds):
        a list of N batches B x 3 x H x W in [-1, 1]; their pairwise LPIPS is averaged inside ``roi_mask``."""
        if self.spatial_lpips is None:
            return
        if len(edits) < 2:
            raise ValueError(f"diversity needs edits with at least 2 seeds, got {len(edits)}")
        region = (roi_mask > 0.5).double()
        groups = ((method, roi), (method, ALL_REGIONS))
        for group in groups:
            self.diversity_seeds[group] = len(edits)
            self.diversity_images[group] += edits[0].shape[0]
        for first in range(len(edits)):
            for second in range(first + 1, len(edits)):
                distances = {"lpips": lpips_map(self.spatial_lpips, edits[first], edits[second])}
                for group in groups:
                    self.diversity[group].add(distances, region)

    @torch.no_grad()
    def add_swap(
        self, method: str, roi: str, inputs: Tensor, edits: Tensor, references: Tensor, region: Tensor
    ) -> None:
        """``method``'s style swaps of region ``roi``: inputs, edits and the references whose style they took,
        B x 3 x H x W in [-1, 1]; ``region``: B x 1 x H x W, the pixels in the region in both the input and
        the reference (each by its own mask). LPIPS of edit and of input to the reference, averaged there."""
        if self.spatial_lpips is None:
            return
        edits = to_size(edits.to(inputs.device), inputs.shape[-2:])
        distances = {
            "edit": lpips_map(self.spatial_lpips, edits, references),
            "input": lpips_map(self.spatial_lpips, inputs, references),
        }
        for group in ((method, roi), (method, ALL_REGIONS)):
            self.swap[group].add(distances, (region > 0.5).double())

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
            row.update(self.preservation[group].compute())
            if self.describer is not None:
                row.update(self.identity[group].compute())
            row.update(self._inside_region(group))
            if method in self.mask_iou:
                iou = self.mask_iou[method].compute()
                row.update(mask_iou=iou["mean" if region == ALL_REGIONS else region], mask_iou_images=iou["images"])
            if group in self.timing:
                row.update({f"time_{name}": value for name, value in self.timing[group].to_dict().items()})
            rows.append(row)
        return rows

    def _inside_region(self, group: tuple[str, str]) -> dict[str, float | int | None]:
        """Diversity and distance to a swap's reference of ``group``, where computed."""
        values: dict[str, float | int | None] = {}
        diversity, swap = self.diversity[group], self.swap[group]
        if diversity.pairs:
            values.update(
                diversity=diversity.mean("lpips"),
                diversity_images=self.diversity_images[group],
                diversity_seeds=self.diversity_seeds[group],
            )
        if swap.pairs:
            values.update(swap_lpips=swap.mean("edit"), swap_lpips_input=swap.mean("input"), swap_pairs=swap.pairs)
        return values
