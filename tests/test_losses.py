"""Losses: GAN / R1 formulas against closed forms, the SAE objective's terms on the tiny SAE, Eq. 2 distances."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from l2sae.losses import (
    PatchSampling,
    PerceptualDistance,
    SAELossWeights,
    gan_loss,
    image_distance,
    patch_r1_penalty,
    r1_penalty,
    sae_discriminator_losses,
    sae_generator_losses,
    sae_r1_loss,
)
from l2sae.nn import SAEConfig, SwappingAutoencoder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these small ops only slow down with more threads on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_sae():
    torch.manual_seed(0)
    return SwappingAutoencoder(SAEConfig.preset("tiny")).set_noise("zero")


@pytest.fixture
def real():
    return torch.rand(2, 3, 64, 64) * 2 - 1


def test_gan_loss_is_softplus_per_sample():
    logits = torch.tensor([[0.0], [2.0], [-3.0]])
    assert torch.allclose(
        gan_loss(logits, real=True), torch.tensor([math.log(2), math.log1p(math.exp(-2)), math.log1p(math.exp(3))])
    )
    assert torch.allclose(
        gan_loss(logits, real=False), torch.tensor([math.log(2), math.log1p(math.exp(2)), math.log1p(math.exp(-3))])
    )
    patch_logits = torch.randn(2, 8, 1)
    assert torch.allclose(gan_loss(patch_logits, real=True), F.softplus(-patch_logits).mean(dim=(1, 2)))


def test_r1_penalty_matches_the_gradient_of_a_linear_critic():
    weight = torch.randn(3, 4, 4, requires_grad=True)
    inputs = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (inputs * weight).sum(dim=(1, 2, 3))
    penalty = r1_penalty(logits, inputs)
    assert torch.allclose(penalty, weight.detach().pow(2).sum().expand(2))
    penalty.sum().backward()  # the graph is kept: the penalty trains the critic
    assert torch.allclose(weight.grad, 4 * weight.detach())


def test_patch_r1_penalty_sums_both_patch_sets_per_image():
    weight = torch.randn(3, 2, 2)
    real = torch.randn(2, 5, 3, 2, 2, requires_grad=True)
    target = torch.randn(2, 5, 3, 2, 2, requires_grad=True)
    logits = (real * weight).sum(dim=(2, 3, 4)) + 2 * (target * weight).sum(dim=(2, 3, 4))
    expected = 5 * weight.pow(2).sum() * (1 + 4)
    assert torch.allclose(patch_r1_penalty(logits, real, target), expected.expand(2))


def test_generator_losses_follow_the_official_terms(tiny_sae, real):
    weights = SAELossWeights(l1=2.0)
    patches = PatchSampling(size=tiny_sae.config.patch_size, num_crops=2)
    losses = sae_generator_losses(tiny_sae, real, weights, patches)
    assert list(losses) == ["G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix"]
    with torch.no_grad():
        structure, texture = tiny_sae.encode(real)
        reconstruction = tiny_sae.decode(structure[:1], texture[:1])
        mix = tiny_sae.decode(structure[[1, 0]], texture)
        discriminator = tiny_sae.discriminator
        assert torch.allclose(losses["G_L1"], 2 * (reconstruction - real[:1]).abs().mean(), atol=1e-6)
        assert torch.allclose(losses["G_GAN_rec"], 0.5 * F.softplus(-discriminator(reconstruction)).mean(), atol=1e-6)
        assert torch.allclose(losses["G_GAN_mix"], F.softplus(-discriminator(mix)).mean(), atol=1e-6)
    losses["G_mix"].backward()
    encoder_grads = [p.grad for p in tiny_sae.E.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads)
    tiny_sae.zero_grad(set_to_none=True)


def test_zero_weights_drop_terms(tiny_sae, real):
    weights = SAELossWeights(gan=0.0, patch_gan=0.0)
    patches = PatchSampling(size=tiny_sae.config.patch_size, num_crops=2)
    assert list(sae_generator_losses(tiny_sae, real, weights, patches)) == ["G_L1"]
    assert sae_discriminator_losses(tiny_sae, real, weights, patches) == {}


def test_discriminator_losses_leave_the_autoencoder_out_of_the_graph(tiny_sae, real):
    patches = PatchSampling(size=tiny_sae.config.patch_size, num_crops=2)
    losses = sae_discriminator_losses(tiny_sae, real, SAELossWeights(), patches)
    assert list(losses) == ["D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix"]
    with torch.no_grad():
        assert torch.allclose(losses["D_real"], F.softplus(-tiny_sae.discriminator(real)).mean(), atol=1e-6)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in tiny_sae.G.parameters())
    assert all(p.grad is not None for p in tiny_sae.Dpatch.parameters())
    tiny_sae.zero_grad(set_to_none=True)


def test_r1_loss_is_half_lambda_times_gradient_norm(tiny_sae, real):
    weights = SAELossWeights(r1=10.0)
    image_only = sae_r1_loss(tiny_sae, real, weights, patches=None)["D_R1"]
    inputs = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tiny_sae.discriminator(inputs).sum(), inputs)
    assert torch.allclose(image_only, 5.0 * grad.pow(2).sum(dim=(1, 2, 3)).mean(), rtol=1e-5)
    patches = PatchSampling(size=tiny_sae.config.patch_size, num_crops=2)
    with_patches = sae_r1_loss(tiny_sae, real, weights, patches)["D_R1"]
    assert with_patches > image_only
    with_patches.backward()
    assert tiny_sae.Dpatch.pairlinear[0].weight.grad is not None
    tiny_sae.zero_grad(set_to_none=True)


@pytest.mark.parametrize(
    ("weights", "image", "patch"),
    [
        (SAELossWeights(), True, True),
        (SAELossWeights(r1=0.0, patch_r1=0.0), False, False),
        (SAELossWeights(gan=0.0, patch_r1=0.0), False, False),  # image R1 of an untrained D: nothing to do
        (SAELossWeights(gan=0.0), False, True),
        (SAELossWeights(patch_gan=0.0), True, False),
    ],
)
def test_r1_terms_apply_only_to_trained_discriminators(tiny_sae, real, weights, image, patch):
    assert (weights.applies_image_r1, weights.applies_patch_r1, weights.applies_r1) == (image, patch, image or patch)
    patches = PatchSampling(size=tiny_sae.config.patch_size, num_crops=2)
    torch.manual_seed(1)
    penalty = sae_r1_loss(tiny_sae, real, weights, patches)["D_R1"]
    torch.manual_seed(1)
    patch_only = sae_r1_loss(tiny_sae, real, SAELossWeights(r1=0.0, patch_r1=weights.patch_r1), patches)["D_R1"]
    image_only = sae_r1_loss(tiny_sae, real, SAELossWeights(r1=weights.r1, patch_r1=0.0), None)["D_R1"]
    expected = (image_only if image else 0.0) + (patch_only if patch else 0.0)
    assert torch.allclose(penalty, torch.as_tensor(expected), rtol=1e-5)
    assert penalty.requires_grad == weights.applies_r1
    tiny_sae.zero_grad(set_to_none=True)


def test_image_distance_l1_and_frozen_lpips():
    images, targets = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.allclose(image_distance(images, targets, 0.5, 0.0, None), 0.5 * (images - targets).abs().mean())
    torch.manual_seed(0)
    perceptual = PerceptualDistance("alex", pretrained_backbone=False)
    parent = nn.ModuleDict({"perceptual": perceptual}).train()
    assert not perceptual.net.training and not any(p.requires_grad for p in perceptual.parameters())
    assert torch.allclose(perceptual(images, images), torch.zeros(3), atol=1e-6)
    with_lpips = image_distance(images, targets, 0.5, 2.0, parent["perceptual"])
    assert with_lpips > image_distance(images, targets, 0.5, 0.0, None)


def test_lpips_rejects_unknown_network():
    with pytest.raises(ValueError, match="loss.lpips.net"):
        PerceptualDistance("resnet")
