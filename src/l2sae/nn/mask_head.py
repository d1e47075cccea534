"""A cheap mask read: a small head on an intermediate block of the SMPN's generator.

The full mask of a region is read off its sliced decode at the image's resolution (the generator's last,
most expensive blocks). :class:`MaskHead` predicts the mask's logits from the features of an earlier block
(e.g. 1/4 of the image side), so :func:`region_mask_logits` runs the sliced decode only up to that block
(:meth:`SwappingAutoencoder.decode_sliced` with ``until``); the logits are upsampled bilinearly to the
image size and thresholded at 0 (:func:`masks_from_logits`). It is distilled from the same SMPN's full
masks (``l2sae.training.mask_head``) and stored in the SMPN checkpoint's ``extra`` (:meth:`MaskHead.to_dict`),
with its agreement with those masks on the validation faces per region (``matte_iou``), by which the editor's
``masks="auto"`` decides which regions it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sae import SwappingAutoencoder

FORMAT = "l2sae-mask-head/1"


class MaskHead(nn.Module):
    """features (B x C x h x w, the output of generator block ``block``) -> mask logits B x 1 x h s x w s.

    A 3 x 3 convolution to ``hidden`` channels, leaky ReLU, a 1 x 1 convolution to ``upscale``^2 logits per
    feature pixel, arranged into an ``upscale`` x ``upscale`` patch each (pixel shuffle): masks finer than
    the features. ``mask_threshold``: the brightness threshold of the full masks it was distilled from.
    ``matte_iou``: {roi: its agreement with those full masks on validation faces} (``sum(min) / sum(max)`` of the
    two masks after the editor's matte blur; recorded by training's last validation), or None: not measured.
    """

    def __init__(
        self,
        block: str,
        in_channels: int,
        hidden: int = 32,
        upscale: int = 1,
        mask_threshold: float = 0.1,
        matte_iou: Mapping[str, float] | None = None,
    ):
        super().__init__()
        self.block, self.in_channels, self.hidden, self.upscale = (
            str(block),
            int(in_channels),
            int(hidden),
            int(upscale),
        )
        self.mask_threshold = float(mask_threshold)
        self.matte_iou = None if matte_iou is None else {str(roi): float(iou) for roi, iou in matte_iou.items()}
        self.conv = nn.Conv2d(self.in_channels, self.hidden, 3, padding=1)
        self.logit = nn.Conv2d(self.hidden, self.upscale**2, 1)

    def forward(self, features: Tensor) -> Tensor:
        return F.pixel_shuffle(self.logit(F.leaky_relu(self.conv(features.float()), 0.2)), self.upscale)

    @classmethod
    def for_network(cls, sae: SwappingAutoencoder, block: str, **options: Any) -> MaskHead:
        """A fresh head on block ``block`` of ``sae``'s generator (a ValueError names the blocks otherwise)."""
        if block not in sae.G.blocks:
            raise ValueError(f"mask_head.block: {block!r} is not a generator block; choose one of {sae.G.blocks}")
        return cls(block, sae.G.block_channels(block), **options)

    def check_fits(self, sae: SwappingAutoencoder, key: str = "mask_head") -> None:
        """Raise ValueError (naming ``key``) unless ``sae``'s generator has this head's block and channels."""
        if self.block not in sae.G.blocks:
            raise ValueError(f"{key}: block {self.block!r} is not a block of this SMPN's generator {sae.G.blocks}")
        channels = sae.G.block_channels(self.block)
        if channels != self.in_channels:
            raise ValueError(f"{key}: made for {self.in_channels} feature channels, block {self.block} has {channels}")

    def resolution(self, sae: SwappingAutoencoder, image_size: int) -> int:
        """The side of the predicted masks for ``image_size`` images."""
        return (
            image_size * sae.G.block_scale(self.block) * self.upscale // 2**sae.config.encoder_downsamplings_structure
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data and tensors (loadable with ``weights_only=True``) for a checkpoint's ``extra``."""
        settings = {
            "block": self.block,
            "in_channels": self.in_channels,
            "hidden": self.hidden,
            "upscale": self.upscale,
        }
        state = {name: value.detach().cpu().clone() for name, value in self.state_dict().items()}
        record = {} if self.matte_iou is None else {"matte_iou": dict(self.matte_iou)}
        return {"format": FORMAT, **settings, "mask_threshold": self.mask_threshold, **record, "state_dict": state}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], key: str = "mask_head") -> MaskHead:
        """The head :meth:`to_dict` wrote; anything else is a ValueError naming ``key``."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"{key}: not a mask head of format {FORMAT!r} (found {found!r}); distil it again")
        try:
            settings = ("block", "in_channels", "hidden", "upscale", "mask_threshold")
            head = cls(**{name: data[name] for name in settings}, matte_iou=data.get("matte_iou"))
            head.load_state_dict(data["state_dict"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
            raise ValueError(
                f"{key}: an incomplete or mis-shaped mask head ({type(error).__name__}: {error})"
            ) from error
        return head


def head_block(sae: SwappingAutoencoder, side_fraction: float) -> str:
    """The last generator block of the smallest output side >= ``side_fraction`` of the image side (the block a
    head reads for that fraction: 0.5 of a 64 px quick-start SAE -> its 32 px block, 0.125 of ffhq256 -> 32 px)."""
    code_fraction = 2.0**-sae.config.encoder_downsamplings_structure
    fitting = [name for name in sae.G.blocks if sae.G.block_scale(name) * code_fraction >= side_fraction]
    smallest = min(sae.G.block_scale(name) for name in fitting)
    return [name for name in fitting if sae.G.block_scale(name) == smallest][-1]


def region_mask_logits(
    sae: SwappingAutoencoder, head: MaskHead, structure: Tensor, texture: Tensor, channel_masks: Tensor
) -> Tensor:
    """Mask logits B x R x h' x w' (float32) of each ROI's slice: the sliced decode up to ``head.block``, then
    the head. structure B x C_s x h x w, texture B x C_t, channel_masks R x C_s (as for ``decode_sliced``)."""
    features = sae.decode_sliced(structure, texture, channel_masks, until=head.block)
    return head(features.flatten(0, 1)).squeeze(1).unflatten(0, features.shape[:2])


def masks_from_logits(logits: Tensor, size: tuple[int, int], soft: bool = False) -> Tensor:
    """Masks B x R x H x W of ``size`` from logits B x R x h x w: bilinear upsampling, then logit > 0
    ({0, 1}) or, ``soft``, the sigmoid (in [0, 1])."""
    upsampled = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    return torch.sigmoid(upsampled) if soft else (upsampled > 0).float()
