"""What the SMN and SMPN LightningModules share: the SAE, optimisers built from the config, manual steps.

Both modules use Lightning's manual optimisation (a GAN alternates optimisers). Note that Lightning's
``global_step`` counts optimiser steps, so one training iteration advances it by one per optimiser
step taken (a D step, a G step and, every ``r1_every`` D steps, the extra lazy-R1 D step).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from l2sae.nn import SAEConfig, SwappingAutoencoder, load_sae
from l2sae.training.distributed import split_random_streams
from l2sae.utils.errors import ConfigError


def build_sae(backbone: Mapping | None, checkpoint: str | None, with_discriminators: bool) -> SwappingAutoencoder:
    """An SAE from ``checkpoint`` (official ``latest_checkpoint.pth`` or ours) or freshly built from ``backbone``.

    With a checkpoint, its architecture wins: an official file is read by shape, ours carries its config.
    """
    if checkpoint:
        return load_sae(checkpoint, with_discriminators=with_discriminators)
    if backbone is None:
        raise ValueError("backbone: give SAEConfig fields (conf/backbone/*.yaml) or a checkpoint to start from")
    return SwappingAutoencoder(SAEConfig.from_backbone(backbone), with_discriminators=with_discriminators)


OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def lazy_regularised(optimizer: torch.optim.Optimizer, r1_every: int) -> torch.optim.Optimizer:
    """``optimizer`` (the discriminators') with StyleGAN2's lazy-regularisation correction c = r1_every / (r1_every + 1)
    in every parameter group: lr * c and, where the optimiser has them, betas ** c (official: Adam lr 0.002 * 16/17,
    betas (0, 0.99 ** (16/17)))."""
    c = r1_every / (r1_every + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * c
        if "betas" in group:
            group["betas"] = tuple(float(beta) ** c for beta in group["betas"])
    return optimizer


def optimizer_config(build_optimizer: OptimizerFactory) -> dict:
    """The plain Hydra config of an optimiser factory (the ``functools.partial`` that ``_partial_: true`` builds),
    e.g. ``{_target_: torch.optim.adam.Adam, _partial_: true, lr: 0.002, betas: [0.0, 0.99]}``.

    Recorded in the hyperparameters instead of the factory: checkpoints hold them and are read weights-only,
    which refuses a pickled function.
    """
    function = getattr(build_optimizer, "func", build_optimizer)
    return {
        "_target_": f"{function.__module__}.{function.__qualname__}",
        "_partial_": True,
        **getattr(build_optimizer, "keywords", {}),
    }


LR_DECAY_KINDS = ("cosine", "linear")


def check_lr_decay(lr_decay: Mapping | None) -> dict | None:
    """Validate ``lr_decay`` (None or ``{kind, final_fraction}``); raises ConfigError naming the key."""
    if not lr_decay:
        return None
    lr_decay = dict(lr_decay)
    unknown = set(lr_decay) - {"kind", "final_fraction"}
    if unknown:
        raise ConfigError(f"lr_decay: unknown keys {sorted(unknown)}; expected kind and final_fraction")
    if lr_decay.get("kind") not in LR_DECAY_KINDS:
        raise ConfigError(f"lr_decay.kind: expected one of {', '.join(LR_DECAY_KINDS)}, got {lr_decay.get('kind')!r}")
    final = lr_decay.setdefault("final_fraction", 0.0)
    if not 0.0 <= final <= 1.0:
        raise ConfigError(f"lr_decay.final_fraction: expected a number in [0, 1], got {final!r}")
    return lr_decay


def lr_decay_factor(lr_decay: Mapping, progress: float) -> float:
    """The learning-rate multiplier at ``progress`` in [0, 1] of the run: 1 at the start, final_fraction at the end."""
    progress = min(max(progress, 0.0), 1.0)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if lr_decay["kind"] == "cosine" else 1.0 - progress
    final = lr_decay["final_fraction"]
    return final + (1.0 - final) * shape


class SAETrainingModule(pl.LightningModule):
    """Base class: owns ``self.sae`` and steps optimisers by hand.

    optimizer: builds an optimiser from a list of parameters (Hydra's ``_partial_: true`` of
        ``model.<stage>.module.optimizer``; official: Adam, lr 0.002, betas (0, 0.99)); E + G get one, the
        discriminators another with the lazy-R1 correction (:func:`lazy_regularised`).
    gradient_clip_val: clip the gradient norm of each step to this value (None: no clipping). Lightning's
        ``Trainer(gradient_clip_val=...)`` is unavailable in manual optimisation, so it lives here.
    lr_decay: None (constant learning rates, official) or ``{kind: cosine | linear, final_fraction}``: every
        optimiser's learning rate falls from its initial value to ``final_fraction`` of it over the run
        (progress = ``global_step / trainer.max_steps``, so ``max_steps`` must be set; 0 trains nothing).
    """

    sae: SwappingAutoencoder

    def __init__(
        self, optimizer: OptimizerFactory, gradient_clip_val: float | None = None, lr_decay: Mapping | None = None
    ):
        super().__init__()
        self.automatic_optimization = False
        self.build_optimizer = optimizer
        self.gradient_clip_val = gradient_clip_val
        self.lr_decay = check_lr_decay(lr_decay)

    def save_hyperparameters_without_code(self) -> None:
        """Save the caller's ``__init__`` arguments as hyperparameters (checkpoints carry them), the optimiser
        factory as its plain config (:func:`optimizer_config`, key ``optimizer_config``)."""
        self.save_hyperparameters(ignore=["optimizer"], frame=inspect.currentframe().f_back)
        self.hparams["optimizer_config"] = optimizer_config(self.build_optimizer)

    def generator_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser over G then E parameters, as the official optimiser lists them."""
        return self.build_optimizer(list(self.sae.G.parameters()) + list(self.sae.E.parameters()))

    def discriminator_optimizer(self, parameters: list[nn.Parameter], r1_every: int) -> torch.optim.Optimizer:
        """The optimiser over the discriminators' ``parameters``, corrected for lazy R1 every ``r1_every`` steps."""
        return lazy_regularised(self.build_optimizer(parameters), r1_every)

    def on_train_start(self) -> None:
        if self.lr_decay and self.trainer.max_steps < 0:
            raise ConfigError(
                "model.<stage>.module.lr_decay: a decaying learning rate needs trainer.max_steps (the run's length)"
            )
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        # after the callbacks' hooks: a resume's states (rank 0's, restored by RandomStates) are split too, so a
        # resumed DDP run draws other numbers than the uninterrupted one (it resumes exactly on one process only)
        if self.trainer.world_size > 1:
            split_random_streams(self.trainer.global_rank, self.trainer.world_size)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Set every optimiser's learning rate for this step of the ``lr_decay`` schedule."""
        if not self.lr_decay:
            return
        factor = lr_decay_factor(self.lr_decay, self.trainer.global_step / self.trainer.max_steps)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def optimize(self, optimizer: pl.core.optimizer.LightningOptimizer, losses: Mapping[str, Tensor]) -> None:
        """One step on the sum of ``losses`` (scalars): zero grads, backward, optional clipping, step.

        The caller toggles the optimiser so that the other networks' parameters get no gradients.
        """
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(sum(losses.values()))
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()

    def log_losses(self, losses: Mapping[str, Tensor], batch_size: int) -> dict[str, Tensor]:
        """Log the loss terms as ``train/<term>`` and return them detached (the step's output, read by the NaN guard)."""
        detached = {name: value.detach() for name, value in losses.items()}
        self.log_dict({f"train/{name}": value for name, value in detached.items()}, batch_size=batch_size)
        return detached

    def on_validation_start(self) -> None:
        """Validate with a deterministic decoder (zero noise), as the editor runs the networks."""
        self.sae.set_noise("zero")

    def on_validation_end(self) -> None:
        self.sae.set_noise("random")

    def after_fit(self, trainer: pl.Trainer, datamodule: pl.LightningDataModule) -> None:
        """Work on the fitted networks, in the process that exports them (``trainer.fit`` may have trained in
        spawned or forked ranks, which hand back only the weights; fit's teardown left them on the CPU). None
        here."""

    def after_validation(self, metrics: Mapping[str, float]) -> None:
        """Keep what the final validation measured (``metrics``: as ``trainer.validate`` returns them, from any
        launcher) for the export. None here."""

    def export(self, path: str) -> None:
        """Write the trained SAE in our checkpoint format (``save_sae``)."""
        raise NotImplementedError
