"""SMN (Style Manipulation Network): the SAE trained or fine-tuned with the official objective."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from l2sae.losses import (
    PatchSampling,
    SAELossWeights,
    sae_discriminator_losses,
    sae_generator_losses,
    sae_r1_loss,
)
from l2sae.nn import save_sae

from .base import OptimizerFactory, SAETrainingModule, build_sae


class SMNModule(SAETrainingModule):
    """Official SAE training (SAE_FACTS sections 7-8) under Lightning's manual optimisation.

    Each training step takes one batch (B x 3 x H x W in [-1, 1], B even per device) and runs a
    discriminator step, every ``r1_every``-th discriminator step a lazy R1 step (penalty x r1_every; only
    where an R1 weight applies to a trained discriminator, as in the official code), then an
    encoder/generator step. The official loop draws a new batch for each of D and G; here both use the
    same batch.

    backbone: ``conf/backbone`` mapping (SAEConfig fields); its ``checkpoint`` entry, when set, is an SAE
        file to start from (official ``latest_checkpoint.pth`` or our ``smn.pt``).
    loss: ``{weights: {l1, gan, patch_gan, r1, patch_r1}, patches: {num_crops, min_scale, max_scale,
        use_aggregation}, r1_every}`` (``conf/loss/*.yaml``, key ``sae``).
    """

    def __init__(
        self,
        backbone: Mapping,
        loss: Mapping,
        optimizer: OptimizerFactory,
        gradient_clip_val: float | None = None,
        lr_decay: Mapping | None = None,
    ):
        super().__init__(optimizer, gradient_clip_val, lr_decay)
        self.save_hyperparameters_without_code()
        self.weights = SAELossWeights(**loss["weights"])
        self.r1_every = int(loss["r1_every"])
        self.sae = build_sae(backbone, backbone.get("checkpoint"), with_discriminators=True)
        self.patches = PatchSampling(size=self.sae.config.patch_size, **loss["patches"])

    @property
    def trains_discriminators(self) -> bool:
        return self.weights.gan > 0 or self.weights.patch_gan > 0

    def configure_optimizers(self):
        optimizers = [self.generator_optimizer()]
        if self.trains_discriminators:
            parameters = list(self.sae.D.parameters()) if self.weights.gan > 0 else []
            parameters += list(self.sae.Dpatch.parameters()) if self.weights.patch_gan > 0 else []
            optimizers.append(self.discriminator_optimizer(parameters, self.r1_every))
        return optimizers

    def training_step(self, batch: Mapping, batch_idx: int) -> dict[str, Tensor]:
        real = batch["image"]
        optimizers = self.optimizers()
        generator_optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        losses: dict[str, Tensor] = {}
        if self.trains_discriminators:
            discriminator_optimizer = optimizers[1]
            self.toggle_optimizer(discriminator_optimizer)
            discriminator_losses = sae_discriminator_losses(self.sae, real, self.weights, self.patches)
            self.optimize(discriminator_optimizer, discriminator_losses)
            losses.update(discriminator_losses)
            self.sae.num_discriminator_iters += 1
            if self.weights.applies_r1 and int(self.sae.num_discriminator_iters) % self.r1_every == 0:
                r1 = sae_r1_loss(self.sae, real, self.weights, self.patches)
                self.optimize(discriminator_optimizer, {"D_R1": r1["D_R1"] * self.r1_every})
                losses.update(r1)
            self.untoggle_optimizer(discriminator_optimizer)
        self.toggle_optimizer(generator_optimizer)
        generator_losses = sae_generator_losses(self.sae, real, self.weights, self.patches)
        self.optimize(generator_optimizer, generator_losses)
        self.untoggle_optimizer(generator_optimizer)
        losses.update(generator_losses)
        return self.log_losses(losses, batch_size=len(batch["image"]))

    def validation_step(self, batch: Mapping, batch_idx: int) -> None:
        real = batch["image"]
        reconstruction = self.sae(real)
        self.log(
            "val/rec_l1", (reconstruction - real).abs().mean(), sync_dist=True, prog_bar=True, batch_size=len(real)
        )

    @torch.no_grad()
    def visual_columns(self, images: Tensor) -> dict[str, Tensor]:
        """Columns of the image grid: input, reconstruction, texture swapped within pairs (B x 3 x H x W each)."""
        structure, texture = self.sae.encode(images)
        columns = {"input": images, "reconstruction": self.sae.decode(structure, texture)}
        if images.shape[0] % 2 == 0:
            columns["swap"] = self.sae.swap(structure, texture)
        return columns

    def export(self, path: str) -> None:
        save_sae(self.sae, path, extra={"kind": "smn"})
