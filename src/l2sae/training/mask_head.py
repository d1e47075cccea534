"""Distil the cheap mask head (:mod:`l2sae.nn.mask_head`) from a trained SMPN's own full-resolution masks.

The SMPN is frozen (eval mode, zero noise, as the editor runs it). Its sliced decodes of a fixed set of
training images are computed once: the features of the head's block (read by a forward hook during the
full decode, so the generator runs once) and the full masks read off the decodes. Then only the head
learns, by Adam with a cosine schedule, the binary cross-entropy between its logits (bilinearly upsampled to
the image size) and those masks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from l2sae.nn import SwappingAutoencoder
from l2sae.nn.layers import NoiseInjection
from l2sae.nn.mask_head import MaskHead, head_block
from l2sae.regions import masks_from_region_decodes
from l2sae.utils.errors import ConfigError


@dataclass(frozen=True)
class MaskHeadSettings:
    """``model.smpn.module.mask_head`` (checked once in :meth:`from_config`).

    side_fraction: the head reads the features of the last generator block whose side is the smallest one at
        least this fraction of the image side (0.5 at 64 px: the 32 px block; 0.125 at 256 px: the 32 px block);
    upscale: logits per feature pixel along each axis (pixel shuffle); hidden: the head's width;
    images: training images distilled on (their R region decodes each are the samples); epochs: passes over
    those samples; batch_size (samples per step), lr: the head's Adam (cosine schedule to 0).
    """

    side_fraction: float = 0.5
    upscale: int = 2
    hidden: int = 32
    images: int = 256
    epochs: int = 15
    batch_size: int = 32
    lr: float = 0.02

    @classmethod
    def from_config(cls, config: Mapping, key: str = "model.smpn.module.mask_head") -> MaskHeadSettings:
        names = {field.name for field in fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {unknown}; expected some of {sorted(names)}")
        settings = cls(**config)
        if not (isinstance(settings.side_fraction, (int, float)) and 0 < settings.side_fraction <= 1):
            raise ConfigError(f"{key}.side_fraction: expected a number in (0, 1], got {settings.side_fraction!r}")
        for name in ("upscale", "hidden", "images", "epochs", "batch_size"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}.{name}: expected an integer >= 1, got {value!r}")
        if not (isinstance(settings.lr, (int, float)) and settings.lr > 0):
            raise ConfigError(f"{key}.lr: expected a positive number, got {settings.lr!r}")
        return settings


def distillation_images(dataset, count: int) -> Tensor:
    """The first ``count`` images (N x 3 x H x W) of a training dataset (items with an "image"), their random flips
    drawn from a fixed seed, so every DDP rank (and a test) distils on the same images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.stack([dataset[index]["image"] for index in range(min(count, len(dataset)))])


@torch.no_grad()
def distillation_set(
    sae: SwappingAutoencoder, block: str, images: Tensor, channel_masks: Tensor, threshold: float, chunk: int = 16
) -> tuple[Tensor, Tensor]:
    """(features N R x C x h x w of ``block``, full masks N R x H x W) of images N x 3 x H x W."""
    captured: list[Tensor] = []
    hook = getattr(sae.G, block).register_forward_hook(lambda module, inputs, output: captured.append(output))
    masks = []
    try:
        for start in range(0, len(images), chunk):
            structure, texture = sae.encode(images[start : start + chunk])
            structure = structure.contiguous(memory_format=torch.channels_last)  # as the editor decodes: 1.4-1.6x
            decodes = sae.decode_sliced(structure, texture, channel_masks).clamp(-1, 1)
            masks.append(masks_from_region_decodes(decodes, threshold=threshold).flatten(0, 1))
    finally:
        hook.remove()
    return torch.cat(captured), torch.cat(masks)


def distill_mask_head(
    sae: SwappingAutoencoder,
    images: Tensor,
    channel_masks: Tensor,
    threshold: float,
    settings: MaskHeadSettings,
    seed: int = 0,
) -> tuple[MaskHead, float]:
    """A head trained to predict ``sae``'s full masks (brightness ``threshold``) of the ROIs ``channel_masks``
    (R x C) on ``images`` (N x 3 x H x W in [-1, 1]); returns it (eval mode, no gradients) and its last loss.

    ``sae`` is left as it was (its training mode and noise are restored).
    """
    block = head_block(sae, settings.side_fraction)
    was_training = sae.training
    noise = next((module.mode for module in sae.G.modules() if isinstance(module, NoiseInjection)), "zero")
    sae.eval().set_noise("zero")
    try:
        features, targets = distillation_set(sae, block, images, channel_masks.to(images), threshold)
    finally:
        sae.train(was_training).set_noise(noise)
    # channels-last features and weights: a head step 1.3x (AVX2) to 1.5x (AVX-512) faster on CPU at the quick
    # start's size; the head is handed back in the default layout
    features = features.contiguous(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = MaskHead(block, features.shape[1], settings.hidden, settings.upscale, threshold)
        head = head.to(images.device, memory_format=torch.channels_last)
    steps = math.ceil(settings.epochs * len(features) / settings.batch_size)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss = torch.zeros(())
    with torch.enable_grad():
        for _ in range(steps):
            picked = torch.randint(len(features), (settings.batch_size,), generator=generator).to(images.device)
            logits = head(features[picked])
            if logits.shape[-2:] != targets.shape[-2:]:  # (at the same size bilinear is the identity)
                logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear")
            loss = F.binary_cross_entropy_with_logits(logits.squeeze(1), targets[picked])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return head.to(memory_format=torch.contiguous_format).eval().requires_grad_(False), float(loss.detach())
