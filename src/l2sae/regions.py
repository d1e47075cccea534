"""Regions of interest (ROIs), CelebAMask-HQ part grouping and structure-channel slicing.

A *slicing scheme* assigns every ROI a fixed, disjoint set of channels of the SAE structure
code. Decoding a structure code in which every channel outside ROI r is zero reproduces
only ROI r on a black background; the ROI mask is read off that decode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from l2sae.utils.errors import ConfigError

ROI_NAMES: tuple[str, ...] = ("hair", "skin", "nose", "eyes", "lips_mouth")

# The 18 part labels of CelebAMask-HQ (label 0 is the background), in the dataset's order.
CELEBAMASK_PARTS: tuple[str, ...] = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)

DEFAULT_REGION_PARTS: dict[str, tuple[str, ...]] = {
    "hair": ("hair",),
    "skin": ("skin",),
    "nose": ("nose",),
    "eyes": ("l_eye", "r_eye"),
    "lips_mouth": ("u_lip", "l_lip", "mouth"),
}

BLACK = -1.0  # background value of ROI images, in the [-1, 1] image range


def validate_region_parts(
    mapping: Mapping[str, Sequence[str]], key: str = "data.regions"
) -> dict[str, tuple[str, ...]]:
    """Check a ROI -> CelebAMask-HQ parts grouping and return it as plain tuples.

    Every ROI needs at least one known part, and no part may belong to two ROIs.
    """
    if not mapping:
        raise ConfigError(f"{key}: no regions given; expected a mapping like {DEFAULT_REGION_PARTS}")
    owner: dict[str, str] = {}
    result: dict[str, tuple[str, ...]] = {}
    for roi, parts in mapping.items():
        if isinstance(parts, str):
            parts = (parts,)
        parts = tuple(parts)
        if not parts:
            raise ConfigError(f"{key}.{roi}: a region needs at least one part")
        for part in parts:
            if part not in CELEBAMASK_PARTS:
                raise ConfigError(f"{key}.{roi}: unknown part {part!r}; known parts: {', '.join(CELEBAMASK_PARTS)}")
            if part in owner:
                raise ConfigError(f"{key}.{roi}: part {part!r} already belongs to region {owner[part]!r}")
            owner[part] = roi
        result[str(roi)] = parts
    return result


def roi_tuple(rois: str | Sequence[str], key: str = "roi") -> tuple[str, ...]:
    """A region setting (a name or a list of names) as a tuple, its names unchecked (:func:`check_rois` checks);
    anything else (null, a number) a ConfigError naming ``key``."""
    if isinstance(rois, str):
        return (rois,)
    if not isinstance(rois, Sequence):
        raise ConfigError(f"{key}: expected a region name or a list of them, got {rois!r}")
    return tuple(rois)


def check_rois(rois: str | Sequence[str], key: str = "roi", known: Sequence[str] = ROI_NAMES) -> tuple[str, ...]:
    """``rois`` (a name or a list) as a tuple of distinct ``known`` regions; else a ConfigError naming ``key``."""
    rois = roi_tuple(rois, key)
    if not rois:
        raise ConfigError(f"{key}: no region given; choose from {', '.join(known)}")
    for roi in rois:
        if roi not in known:
            raise ConfigError(f"{key}: unknown region {roi!r}; choose from {', '.join(known)}")
    if len(set(rois)) != len(rois):
        raise ConfigError(f"{key}: region listed twice in {list(rois)}")
    return rois


@dataclass(frozen=True)
class SliceScheme:
    """Which structure channels belong to which ROI.

    ``channels`` maps each ROI to its channel indices (disjoint, in ``[0, num_channels)``);
    channels that belong to no ROI are allowed (they carry the background and the rest).
    ``key`` is the config key reported in errors.
    """

    channels: Mapping[str, tuple[int, ...]]
    num_channels: int
    key: str = field(default="slicing", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.num_channels, bool) or not isinstance(self.num_channels, int) or self.num_channels < 1:
            raise ConfigError(f"{self.key}.num_channels: expected a positive integer, got {self.num_channels!r}")
        if not self.channels:
            raise ConfigError(f"{self.key}.channels: no regions given; expected e.g. {{hair: [0, 1], skin: [2]}}")
        owner: dict[int, str] = {}
        normalised: dict[str, tuple[int, ...]] = {}
        for roi, chans in self.channels.items():
            where = f"{self.key}.channels.{roi}"
            if roi not in ROI_NAMES:
                raise ConfigError(f"{where}: unknown region {roi!r}; known regions: {', '.join(ROI_NAMES)}")
            if isinstance(chans, str) or not isinstance(chans, (int, Sequence)):
                raise ConfigError(f"{where}: expected a channel index or a list of them, got {chans!r}")
            chans = (chans,) if isinstance(chans, int) else tuple(chans)
            if not chans:
                raise ConfigError(f"{where}: a region needs at least one channel")
            for c in chans:
                if isinstance(c, bool) or not isinstance(c, int):
                    raise ConfigError(f"{where}: channel {c!r} is not an integer")
                if not 0 <= c < self.num_channels:
                    raise ConfigError(
                        f"{where}: channel {c} is out of range for a {self.num_channels}-channel structure code"
                    )
                if c in owner:
                    raise ConfigError(f"{where}: channel {c} already belongs to region {owner[c]!r}")
                owner[c] = roi
            normalised[roi] = chans
        object.__setattr__(self, "channels", normalised)

    @property
    def roi_names(self) -> tuple[str, ...]:
        return tuple(self.channels)

    def validate_rois(self, rois: str | Sequence[str], key: str = "roi") -> tuple[str, ...]:
        """Return ``rois`` as a tuple after checking each is a region of this scheme."""
        return check_rois(rois, key, self.roi_names)

    def require(self, rois: Sequence[str], key: str = "data.regions") -> None:
        """Fail when a region in ``rois`` (e.g. the dataset's regions) has no channels in this scheme."""
        missing = [roi for roi in rois if roi not in self.channels]
        if missing:
            raise ConfigError(
                f"{self.key}.channels: no channels for region(s) {missing} listed in {key}; "
                f"add them to the slicing scheme or drop them from {key}"
            )

    def channel_masks(self, rois: str | Sequence[str] | None = None) -> torch.Tensor:
        """R x C float tensor: 1 where channel c belongs to the r-th requested ROI, else 0."""
        rois = self.roi_names if rois is None else self.validate_rois(rois)
        masks = torch.zeros(len(rois), self.num_channels)
        for row, roi in enumerate(rois):
            masks[row, list(self.channels[roi])] = 1.0
        return masks

    def to_dict(self) -> dict:
        return {"num_channels": self.num_channels, "channels": {r: list(c) for r, c in self.channels.items()}}

    @classmethod
    def from_dict(cls, data: Mapping, key: str = "slicing") -> SliceScheme:
        """Build from ``{"num_channels": C, "channels": {roi: [c, ...]}}`` (a config node or a checkpoint)."""
        for required in ("num_channels", "channels"):
            if required not in data:
                raise ConfigError(f"{key}.{required}: missing")
        if not isinstance(data["channels"], Mapping):
            raise ConfigError(
                f"{key}.channels: expected a mapping region -> channels, e.g. {{hair: [0, 1]}}, got {data['channels']!r}"
            )
        channels = {str(roi): chans for roi, chans in dict(data["channels"]).items()}  # checked as they are
        return cls(channels=channels, num_channels=data["num_channels"], key=key)


def region_images(images: torch.Tensor, roi_masks: torch.Tensor) -> torch.Tensor:
    """ROI images on a black background, the SMPN's training targets.

    images: B x 3 x H x W in [-1, 1]; roi_masks: B x R x H x W in [0, 1].
    Returns B x R x 3 x H x W: ``image * m + BLACK * (1 - m)`` for each region.
    """
    masks = roi_masks.unsqueeze(2).to(images.dtype)
    return images.unsqueeze(1) * masks + BLACK * (1.0 - masks)


DEFAULT_MASK_THRESHOLD = 0.1  # half the brightness of the darkest synthetic part (synthfaces.MIN_PART_BRIGHTNESS)


def masks_from_region_decodes(
    decodes: torch.Tensor, threshold: float = DEFAULT_MASK_THRESHOLD, soft: bool = False, softness: float = 0.05
) -> torch.Tensor:
    """Read ROI masks off decoded ROI images.

    decodes: B x R x 3 x H x W in [-1, 1] (an ROI on black). A pixel's brightness is the mean of
    its channels mapped to [0, 1]; it is in the ROI when the brightness exceeds ``threshold``.
    Returns B x R x H x W in {0, 1} (hard) or in [0, 1] (soft: a linear ramp from 0 at the threshold
    to 1 at ``threshold + softness``, so pixels at or below the threshold stay exactly 0).
    """
    if decodes.dim() != 5 or decodes.shape[2] != 3:
        raise ValueError(f"decodes must be B x R x 3 x H x W, got {tuple(decodes.shape)}")
    brightness = (decodes.float().mean(dim=2) - BLACK) / 2.0
    if soft:
        return ((brightness - threshold) / softness).clamp(0.0, 1.0)
    return (brightness > threshold).float()
