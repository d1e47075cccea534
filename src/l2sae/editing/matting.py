"""Alpha matting, the paper's Algorithm 2.

The hard ROI mask ``m`` is blurred into a matte ``m' = GaussianBlur(m)`` and the globally
edited image ``x_g`` is composited into the input ``x``: ``y = m' * x_g + (1 - m') * x``.
An optional light blur of the composite along the matte's edge hides the seam. Where the
matte is exactly 0 the output equals the input exactly, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from l2sae.utils.errors import ConfigError


def default_kernel_size(side: int) -> int:
    """An odd Gaussian kernel of about 1/16 of the image side (5 px at 64 px, 17 px at 256 px)."""
    return max(3, (side // 16) | 1)


def gaussian_kernel(size: int, sigma: float | None) -> torch.Tensor:
    """The normalised 1-d Gaussian of ``size`` taps (sigma None: torchvision's default for the size)."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8 if sigma is None else sigma
    taps = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, size: int, sigma: float | None = None) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` (reflected borders) of B x C x H x W images, as two 1-d passes: it
    equals the 2-d kernel's blur up to float rounding at ``2 size`` instead of ``size^2`` products per pixel
    (a 17 x 17 matte blur at 256 px: ~1 ms of CPU time against 3.5-7 ms)."""
    kernel = gaussian_kernel(size, sigma).to(images)
    channels, half = images.shape[1], size // 2
    padded = F.pad(images, (half, half, half, half), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def composite(images: torch.Tensor, global_edit: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
    """``matte * global_edit + (1 - matte) * images``; images B x 3 x H x W, matte B x 1 x H x W in [0, 1]."""
    return matte * global_edit + (1.0 - matte) * images


def smooth_seam(images: torch.Tensor, matte: torch.Tensor, strength: float, kernel_size: int) -> torch.Tensor:
    """Blend a blurred copy of ``images`` in along the matte's edge.

    The blend weight is ``strength * 4 m' (1 - m')``: largest where the matte is 0.5, and exactly 0
    where the matte is 0 or 1, so those pixels are returned unchanged.
    """
    weight = strength * 4.0 * matte * (1.0 - matte)
    blurred = gaussian_blur(images, kernel_size)
    return weight * blurred + (1.0 - weight) * images


@dataclass(frozen=True)
class AlphaMatting:
    """Algorithm 2 with its knobs.

    kernel_size: odd size of the Gaussian that blurs the mask into the matte
        (None: :func:`default_kernel_size` of the image side).
    sigma: its standard deviation in pixels (None: torchvision's default for the kernel size).
    seam_strength: in [0, 1]; how much of the blurred composite replaces the seam (0 turns it off).
    seam_kernel_size: odd size of the Gaussian used along the seam.
    key: the config key named in errors.
    """

    kernel_size: int | None = None
    sigma: float | None = None
    seam_strength: float = 0.5
    seam_kernel_size: int = 3
    key: str = field(default="matting", compare=False)

    def __post_init__(self) -> None:
        for name in ("kernel_size", "seam_kernel_size"):
            size = getattr(self, name)
            if size is None and name == "kernel_size":
                continue
            if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
                raise ConfigError(f"{self.key}.{name}: expected an odd positive integer, got {size!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ConfigError(f"{self.key}.sigma: expected a positive number or null, got {self.sigma!r}")
        if not 0.0 <= self.seam_strength <= 1.0:
            raise ConfigError(f"{self.key}.seam_strength: expected a number in [0, 1], got {self.seam_strength!r}")

    def check_fits(self, side: int, key: str) -> None:
        """Refuse a kernel too wide for images of ``side`` px, naming ``key``.kernel_size or .seam_kernel_size and the
        largest allowed size (the blurs reflect the image at its border: half the kernel must be below the side)."""
        largest = 2 * side - 1
        for name in ("kernel_size", "seam_kernel_size"):
            size = getattr(self, name)
            if size is not None and size > largest:
                raise ConfigError(
                    f"{key}.{name}: {size} is too large for {side} px images (the blur reflects them at their "
                    f"border); use an odd size of at most {largest}"
                )

    def matte(self, masks: torch.Tensor) -> torch.Tensor:
        """Blur masks (B x 1 x H x W in [0, 1]) into the matte (same shape, in [0, 1])."""
        size = self.kernel_size or default_kernel_size(min(masks.shape[-2:]))
        return gaussian_blur(masks.float(), size, self.sigma).clamp(0.0, 1.0)

    def blend(self, images: torch.Tensor, global_edit: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
        """Composite ``global_edit`` into ``images`` (B x 3 x H x W in [-1, 1]) through ``matte`` (B x 1 x H x W,
        from :meth:`matte`), with the seam smoothing."""
        return self.smooth(composite(images, global_edit, matte), matte)

    def smooth(self, images: torch.Tensor, matte: torch.Tensor, kernel_size: int | None = None) -> torch.Tensor:
        """:func:`smooth_seam` of a composite (B x C x H x W) along its matte (B x 1 x H x W) with a Gaussian of
        ``kernel_size`` (None: ``seam_kernel_size``); the composite itself when ``seam_strength`` is 0."""
        if self.seam_strength == 0:
            return images
        return smooth_seam(images, matte, self.seam_strength, kernel_size or self.seam_kernel_size)

    def seam_kernel_at(self, scale: float) -> int:
        """The seam Gaussian's size for a matte warped ``scale`` times larger (a face pasted into a photo):
        ``seam_kernel_size`` scaled, odd, and never smaller."""
        return max(self.seam_kernel_size, round(self.seam_kernel_size * scale) | 1)

    def __call__(
        self, images: torch.Tensor, global_edit: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Composite ``global_edit`` into ``images`` inside ``masks``.

        images, global_edit: B x 3 x H x W in [-1, 1]; masks: B x 1 x H x W in [0, 1].
        Returns (edited images B x 3 x H x W in [-1, 1], the matte used B x 1 x H x W).
        """
        matte = self.matte(masks)
        return self.blend(images, global_edit, matte), matte
