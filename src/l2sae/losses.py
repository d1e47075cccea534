"""Losses of the Swapping Autoencoder (official objective) and of the SMPN (paper's Eq. 2).

Every function here is plain PyTorch. Per-sample losses have shape ``B``; the ``sae_*`` functions
return dicts of weighted scalar terms under the official names (``G_L1``, ``G_GAN_rec``, ``G_GAN_mix``,
``G_mix``, ``D_real``, ``D_rec``, ``D_mix``, ``PatchD_real``, ``PatchD_mix``, ``D_R1``), whose sum is
the step's loss (SAE_FACTS section 7). Images are B x 3 x H x W in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2sae.nn import pairwise_swap, random_patch_crops
from l2sae.utils.pretrained import build_lpips


@dataclass(frozen=True)
class SAELossWeights:
    """The official lambdas (``lambda_L1``, ``lambda_GAN``, ``lambda_PatchGAN``, ``lambda_R1``, ``lambda_patch_R1``)."""

    l1: float = 1.0
    gan: float = 1.0
    patch_gan: float = 1.0
    r1: float = 10.0
    patch_r1: float = 1.0

    @property
    def applies_image_r1(self) -> bool:
        """Image R1 applies: it has a weight and the image discriminator is trained (``gan > 0``)."""
        return self.r1 > 0 and self.gan > 0

    @property
    def applies_patch_r1(self) -> bool:
        """Patch R1 applies: it has a weight and the patch discriminator is trained (``patch_gan > 0``)."""
        return self.patch_r1 > 0 and self.patch_gan > 0

    @property
    def applies_r1(self) -> bool:
        """A lazy R1 step has something to do (the official code runs it only then)."""
        return self.applies_image_r1 or self.applies_patch_r1


@dataclass(frozen=True)
class PatchSampling:
    """Random patch crops for the co-occurrence discriminator (``patch_*`` official options)."""

    size: int = 128
    num_crops: int = 8
    min_scale: float = 1 / 8
    max_scale: float = 1 / 4
    use_aggregation: bool = True

    def crops(self, images: Tensor) -> Tensor:
        """B x 3 x H x W -> B x T x 3 x P x P."""
        return random_patch_crops(images, self.size, self.num_crops, self.min_scale, self.max_scale)


def gan_loss(logits: Tensor, real: bool) -> Tensor:
    """Non-saturating logistic loss per sample: softplus(-logits) for real, softplus(logits) for fake.

    logits: B x ... raw discriminator outputs. Returns B (mean over the other dims).
    """
    loss = F.softplus(-logits) if real else F.softplus(logits)
    return loss.reshape(loss.shape[0], -1).mean(dim=1)


def r1_penalty(logits: Tensor, inputs: Tensor) -> Tensor:
    """Per-sample squared gradient norm of ``logits.sum()`` w.r.t. ``inputs`` (B x ...), graph kept. Returns B."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1)


def patch_r1_penalty(logits: Tensor, real_patches: Tensor, target_patches: Tensor) -> Tensor:
    """Patch R1: squared gradient norms w.r.t. both patch sets (B x T x 3 x P x P), summed per image. Returns B."""
    grads = torch.autograd.grad(logits.sum(), [real_patches, target_patches], create_graph=True)
    return sum(grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1) for grad in grads)


def sae_generator_losses(model: nn.Module, real: Tensor, weights: SAELossWeights, patches: PatchSampling) -> dict:
    """Encoder/generator step of the official objective; discriminators should be frozen by the caller."""
    structure, texture = model.encode(real)
    half = real.shape[0] // 2
    rec = model.decode(structure[:half], texture[:half])
    mixed_structure = pairwise_swap(structure)
    losses = {}
    if weights.l1 > 0:
        losses["G_L1"] = (rec - real[:half]).abs().mean() * weights.l1
    if model.config.crop_size >= 1024:  # the official memory saving: mix only the second half
        real, texture, mixed_structure = real[half:], texture[half:], mixed_structure[half:]
    mix = model.decode(mixed_structure, texture)
    if weights.gan > 0:
        losses["G_GAN_rec"] = gan_loss(model.discriminator(rec), real=True).mean() * (0.5 * weights.gan)
        losses["G_GAN_mix"] = gan_loss(model.discriminator(mix), real=True).mean() * weights.gan
    if weights.patch_gan > 0:
        patch_d = model.patch_discriminator
        real_features = patch_d.extract_features(patches.crops(real), aggregate=patches.use_aggregation).detach()
        mix_features = patch_d.extract_features(patches.crops(mix))
        scores = patch_d.discriminate_features(real_features, mix_features)
        losses["G_mix"] = gan_loss(scores, real=True).mean() * weights.patch_gan
    return losses


def sae_discriminator_losses(model: nn.Module, real: Tensor, weights: SAELossWeights, patches: PatchSampling) -> dict:
    """Discriminator step of the official objective (E and G run without gradients)."""
    with torch.no_grad():
        structure, texture = model.encode(real)
        half = real.shape[0] // 2
        rec = model.decode(structure[:half], texture[:half])
        mix = model.decode(pairwise_swap(structure), texture)
    losses = {}
    if weights.gan > 0:
        discriminator = model.discriminator
        losses["D_real"] = gan_loss(discriminator(real), real=True).mean() * weights.gan
        losses["D_rec"] = gan_loss(discriminator(rec), real=False).mean() * (0.5 * weights.gan)
        losses["D_mix"] = gan_loss(discriminator(mix), real=False).mean() * (0.5 * weights.gan)
    if weights.patch_gan > 0:
        patch_d = model.patch_discriminator
        real_features = patch_d.extract_features(patches.crops(real), aggregate=patches.use_aggregation)
        target_features = patch_d.extract_features(patches.crops(real))
        mix_features = patch_d.extract_features(patches.crops(mix))
        real_scores = patch_d.discriminate_features(real_features, target_features)
        mix_scores = patch_d.discriminate_features(real_features, mix_features)
        losses["PatchD_real"] = gan_loss(real_scores, real=True).mean() * weights.patch_gan
        losses["PatchD_mix"] = gan_loss(mix_scores, real=False).mean() * weights.patch_gan
    return losses


def sae_r1_loss(model: nn.Module, real: Tensor, weights: SAELossWeights, patches: PatchSampling | None) -> dict:
    """R1 of the image discriminator plus (with ``patches``) patch R1 on two fresh crop sets: ``{"D_R1": scalar}``.

    Per sample: ``0.5 * r1 * |dD/dx|^2 + 0.25 * patch_r1 * (|dDp/dreal|^2 + |dDp/dtarget|^2)``, averaged
    over the batch; each term only where it applies to a trained discriminator (``weights.applies_image_r1``,
    ``weights.applies_patch_r1``). The lazy-regularisation factor (x R1_once_every) is the caller's.
    """
    penalty = real.new_zeros(real.shape[0])
    if weights.applies_image_r1:
        real = real.detach().requires_grad_(True)
        penalty = penalty + r1_penalty(model.discriminator(real), real) * (0.5 * weights.r1)
    if patches is not None and weights.applies_patch_r1:
        patch_d = model.patch_discriminator
        real_patches = patches.crops(real.detach()).requires_grad_(True)
        target_patches = patches.crops(real.detach()).requires_grad_(True)
        real_features = patch_d.extract_features(real_patches, aggregate=patches.use_aggregation)
        target_features = patch_d.extract_features(target_patches)
        scores = patch_d.discriminate_features(real_features, target_features)
        penalty = penalty + patch_r1_penalty(scores, real_patches, target_patches) * (0.25 * weights.patch_r1)
    return {"D_R1": penalty.mean()}


class PerceptualDistance(nn.Module):
    """LPIPS distance with a frozen network that stays in eval mode. (N x 3 x H x W, N x 3 x H x W) -> N.

    ``pretrained_backbone=False`` gives a random backbone (tests only: no weights are read).
    """

    def __init__(self, net: str = "alex", pretrained_backbone: bool = True):
        super().__init__()
        self.net = build_lpips(net, random_backbone=not pretrained_backbone, net_key="loss.lpips.net")

    def train(self, mode: bool = True) -> PerceptualDistance:
        """The LPIPS network is frozen: it stays in eval mode whatever the parent does."""
        return self

    def forward(self, images: Tensor, targets: Tensor) -> Tensor:
        return self.net(images, targets).reshape(images.shape[0])


def image_distance(
    images: Tensor,
    targets: Tensor,
    l1: float,
    lpips: float,
    perceptual: PerceptualDistance | None,
    pixel_weights: Tensor | None = None,
) -> Tensor:
    """``l1 * mean(w * |images - targets|) + lpips * mean LPIPS`` over N x 3 x H x W batches (scalar).

    pixel_weights: optional N x 1 x H x W weights of the L1 term (default: all ones).
    """
    error = (images - targets).abs()
    loss = (error if pixel_weights is None else error * pixel_weights).mean() * l1
    if lpips > 0:
        loss = loss + perceptual(images, targets).mean() * lpips
    return loss
