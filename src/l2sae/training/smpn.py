"""SMPN (Semantic Mask Prediction Network): an SAE fine-tuned so that its structure channels are sliced per ROI."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor
from torchmetrics.classification import MultilabelJaccardIndex

from l2sae.editing.matting import AlphaMatting
from l2sae.evaluation.masks import SoftRegionIoU
from l2sae.losses import PerceptualDistance, gan_loss, image_distance, r1_penalty
from l2sae.nn import save_sae
from l2sae.nn.mask_head import masks_from_logits, region_mask_logits
from l2sae.regions import (
    DEFAULT_MASK_THRESHOLD,
    SliceScheme,
    masks_from_region_decodes,
    region_images,
)
from l2sae.utils.errors import ConfigError

from .base import OptimizerFactory, SAETrainingModule, build_sae
from .distributed import global_rank
from .mask_head import MaskHeadSettings, distill_mask_head, distillation_images

log = logging.getLogger(__name__)

# distinct colours (in [0, 1]) for drawing up to eight ROI masks in one image
MASK_COLOURS = torch.tensor(
    [
        [0.9, 0.6, 0.1],
        [0.95, 0.8, 0.65],
        [0.2, 0.7, 0.3],
        [0.2, 0.5, 0.95],
        [0.9, 0.2, 0.3],
        [0.6, 0.3, 0.8],
        [0.1, 0.8, 0.8],
        [0.8, 0.8, 0.2],
    ]
)


def foreground_weights(roi_masks: Tensor, foreground_weight: float | str) -> Tensor:
    """Per-pixel weights of the region L1: ``foreground_weight`` inside each ROI, 1 outside.

    roi_masks B x R x H x W in {0, 1} -> weights B x R x H x W. 1 is Eq. 2 as published. The black background
    outnumbers a small ROI, so an L1-trained decode stays black there for a long time; a larger weight, or
    ``"balanced"`` (ROI pixels weigh (1 - a) / a for the ROI's area fraction a in the batch, so ROI and
    background count equally), lights ROIs up early. The value is checked by :class:`SMPNLoss`.
    """
    if foreground_weight == "balanced":
        area = roi_masks.mean(dim=(0, 2, 3), keepdim=True).clamp(min=1e-3)
        foreground_weight = (1 - area) / area
    return 1 + (foreground_weight - 1) * roi_masks


def _checked(value, key: str, expected: str, ok: bool):
    """``value`` when ``ok``, else a ConfigError naming ``key`` and what was ``expected``."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    return value


def _weight(value, key: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(_checked(value, key, "a number >= 0", number and value >= 0))


@dataclass(frozen=True)
class DistanceWeights:
    """Weights of one Eq. 2 term: ``l1 * L1 + lpips * LPIPS``."""

    l1: float = 1.0
    lpips: float = 0.0


@dataclass(frozen=True)
class SMPNLoss:
    """Eq. 2's settings (``conf/loss/*.yaml``, key ``smpn``), checked once in :meth:`from_config`.

    reconstruction / region: the terms' weights; foreground_weight: see :func:`foreground_weights`;
    gan > 0 adds the adversarial term with the image discriminator (lazy R1 of weight ``r1`` every
    ``r1_every`` steps); lpips_net / lpips_pretrained: LPIPS' backbone (alex or vgg; random: tests only).
    """

    reconstruction: DistanceWeights = DistanceWeights()
    region: DistanceWeights = DistanceWeights()
    foreground_weight: float | str = 1.0
    gan: float = 0.0
    r1: float = 10.0
    r1_every: int = 16
    lpips_net: str = "alex"
    lpips_pretrained: bool = True

    @classmethod
    def from_config(cls, loss: Mapping, key: str = "loss.smpn") -> SMPNLoss:
        """The settings of ``loss`` (a ``conf/loss`` mapping); a bad value is a ConfigError naming its key."""
        keys = ("reconstruction", "region", "gan", "r1", "r1_every", "lpips_net", "lpips_pretrained")
        _checked(sorted(loss), key, f"the keys {', '.join(keys)}", set(loss) <= set(keys))
        terms = {}
        for term in ("reconstruction", "region"):
            settings = dict(loss.get(term) or {})
            foreground = settings.pop("foreground_weight", 1.0) if term == "region" else None
            _checked(sorted(settings), f"{key}.{term}", "the keys l1, lpips", set(settings) <= {"l1", "lpips"})
            terms[term] = DistanceWeights(**{name: _weight(v, f"{key}.{term}.{name}") for name, v in settings.items()})
        positive = isinstance(foreground, (int, float)) and not isinstance(foreground, bool) and foreground > 0
        expected = "a positive number or 'balanced'"
        _checked(foreground, f"{key}.region.foreground_weight", expected, positive or foreground == "balanced")
        r1_every = loss.get("r1_every", 16)
        integer = isinstance(r1_every, int) and not isinstance(r1_every, bool)
        _checked(r1_every, f"{key}.r1_every", "an integer >= 1", integer and r1_every >= 1)
        net = _checked(
            loss.get("lpips_net", "alex"),
            f"{key}.lpips_net",
            "alex or vgg",
            loss.get("lpips_net", "alex") in ("alex", "vgg"),
        )
        return cls(
            **terms,
            foreground_weight=float(foreground) if positive else foreground,
            gan=_weight(loss.get("gan", 0.0), f"{key}.gan"),
            r1=_weight(loss.get("r1", 10.0), f"{key}.r1"),
            r1_every=r1_every,
            lpips_net=net,
            lpips_pretrained=bool(loss.get("lpips_pretrained", True)),
        )

    @property
    def uses_lpips(self) -> bool:
        return self.reconstruction.lpips > 0 or self.region.lpips > 0


class SMPNModule(SAETrainingModule):
    """Fine-tunes an SAE with the paper's Eq. 2.

    For a batch of images x (B x 3 x H x W in [-1, 1]) with ROI masks m (B x R x H x W in {0, 1}):
    ``loss = rec(G(s, t), x) + sum_r region(G(s * M_r, t), x * m_r on black)``, where (s, t) = E(x) and
    M_r zeroes every structure channel outside ROI r's slice (of the normalised code, see
    ``SwappingAutoencoder.decode_sliced``). The reconstruction and all B x R region decodes go through the
    generator in one batched call. Each distance is ``l1 * L1 + lpips * LPIPS``;
    an optional adversarial term (``gan`` > 0) scores the reconstructions with the image discriminator,
    which is then trained as in the SAE (with lazy R1). The ROI mask of a decode is read off by
    :func:`masks_from_region_decodes`; validation logs its IoU against the ground truth over all pixels,
    per ROI (``val/iou_<roi>``) and their mean (``val/mask_miou``).

    init_checkpoint: SAE file to start from (official or ours, e.g. the quick start's ``smn.pt``).
    slicing: ``{num_channels, channels: {roi: [c, ...]}}`` (``conf/slicing``).
    roi_names: the dataset's ROIs, in the order of its ``roi_masks``; each needs channels in ``slicing``.
    loss: ``{reconstruction: {l1, lpips}, region: {l1, lpips, foreground_weight}, gan, r1, r1_every,
        lpips_net, lpips_pretrained}`` (``conf/loss/*.yaml``, key ``smpn``), read into :class:`SMPNLoss`.
    image_size: training image side, recorded in the exported checkpoint.
    mask_threshold: brightness threshold of :func:`masks_from_region_decodes`; recorded in the exported file,
        where the editor reads it.
    mask_head: None, or the settings of the cheap mask head (:class:`~l2sae.training.mask_head.MaskHeadSettings`)
        distilled from the trained SMPN's own masks when fitting ends (only the head learns) and exported with
        it; the validation after that logs its agreement with the full masks (and records it in the head, where
        the editor's ``masks="auto"`` reads it): ``val/fast_matte_iou_<roi>``
        (``sum(min) / sum(max)`` of the two mattes, i.e. the masks after the editor's default matte blur, over
        all validation pixels), their mean ``val/fast_matte_iou`` and the mean hard-mask IoU ``val/fast_mask_iou``.
    """

    def __init__(
        self,
        init_checkpoint: str,
        slicing: Mapping,
        roi_names: Sequence[str],
        loss: Mapping,
        optimizer: OptimizerFactory,
        image_size: int,
        mask_threshold: float = DEFAULT_MASK_THRESHOLD,
        gradient_clip_val: float | None = None,
        lr_decay: Mapping | None = None,
        mask_head: Mapping | None = None,
    ):
        super().__init__(optimizer, gradient_clip_val, lr_decay)
        self.save_hyperparameters_without_code()
        self.slice_scheme = self.check_settings(slicing, roi_names)
        self.roi_names = tuple(roi_names)
        self.loss = SMPNLoss.from_config(loss)
        self.adversarial = self.loss.gan > 0
        self.sae = build_sae(None, init_checkpoint, with_discriminators=self.adversarial)
        if self.slice_scheme.num_channels != self.sae.config.structure_channels:
            raise ConfigError(
                f"slicing.num_channels: the scheme has {self.slice_scheme.num_channels} channels but the SAE in "
                f"{init_checkpoint} has a {self.sae.config.structure_channels}-channel structure code"
            )
        self.image_size = int(image_size)
        self.mask_threshold = mask_threshold
        channel_masks = self.slice_scheme.channel_masks(self.roi_names)  # R x C
        full = torch.ones(1, channel_masks.shape[1])
        self.register_buffer("decode_channels", torch.cat([full, channel_masks]), persistent=False)
        self.perceptual = (
            PerceptualDistance(self.loss.lpips_net, pretrained_backbone=self.loss.lpips_pretrained)
            if self.loss.uses_lpips
            else None
        )
        self.val_iou = MultilabelJaccardIndex(num_labels=len(self.roi_names), average=None)
        self.mask_head_settings = MaskHeadSettings.from_config(mask_head) if mask_head else None
        self.mask_head = None  # distilled after fitting (after_fit)
        self.fast_mask_iou, self.fast_matte_iou = SoftRegionIoU(len(self.roi_names)), SoftRegionIoU(len(self.roi_names))

    @staticmethod
    def check_settings(slicing: Mapping, roi_names: Sequence[str]) -> SliceScheme:
        """The slicing, checked against the ROIs (raises ConfigError naming the key)."""
        scheme = SliceScheme.from_dict(slicing, key="slicing")
        scheme.require(roi_names, key="data.regions")
        return scheme

    # ---- forward -------------------------------------------------------------------------------
    def decode_regions(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images B x 3 x H x W -> (reconstruction B x 3 x H x W, region decodes B x R x 3 x H x W), unbounded.

        One generator call on B * (R + 1) codes (``SwappingAutoencoder.decode_sliced``, as the editor reads
        masks): an all-channels row gives the reconstruction, then each ROI's slice.
        """
        structure, texture = self.sae.encode(images)
        decodes = self.sae.decode_sliced(structure, texture, self.decode_channels)
        return decodes[:, 0], decodes[:, 1:]

    def predict_masks(self, images: Tensor) -> Tensor:
        """images B x 3 x H x W -> ROI masks B x R x H x W in {0, 1}, in ``roi_names`` order."""
        _, region_decodes = self.decode_regions(images)
        return masks_from_region_decodes(region_decodes.clamp(-1, 1), threshold=self.mask_threshold)

    def eq2_losses(self, images: Tensor, roi_masks: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The reconstruction and summed region terms; also returns the reconstruction and region decodes."""
        reconstruction, region_decodes = self.decode_regions(images)
        targets = region_images(images, roi_masks)
        rec, region = self.loss.reconstruction, self.loss.region
        pixel_weights = foreground_weights(roi_masks, self.loss.foreground_weight).flatten(0, 1).unsqueeze(1)
        losses = {
            "rec": image_distance(reconstruction, images, rec.l1, rec.lpips, self.perceptual),
            # image_distance averages over the B * R decodes; Eq. 2 sums over ROIs
            "region": image_distance(
                region_decodes.flatten(0, 1),
                targets.flatten(0, 1),
                region.l1,
                region.lpips,
                self.perceptual,
                pixel_weights,
            )
            * len(self.roi_names),
        }
        return losses, reconstruction, region_decodes

    # ---- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizers = [self.generator_optimizer()]
        if self.adversarial:
            parameters = list(self.sae.D.parameters())
            optimizers.append(self.discriminator_optimizer(parameters, self.loss.r1_every))
        return optimizers

    def training_step(self, batch: Mapping, batch_idx: int) -> dict[str, Tensor]:
        images, roi_masks = batch["image"], batch["roi_masks"]
        optimizers = self.optimizers()
        generator_optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        losses: dict[str, Tensor] = {}
        if self.adversarial:
            losses.update(self._discriminator_step(optimizers[1], images))
        self.toggle_optimizer(generator_optimizer)
        generator_losses, reconstruction, _ = self.eq2_losses(images, roi_masks)
        if self.adversarial:
            generator_losses["G_GAN_rec"] = (
                gan_loss(self.sae.discriminator(reconstruction), real=True).mean() * self.loss.gan
            )
        self.optimize(generator_optimizer, generator_losses)
        self.untoggle_optimizer(generator_optimizer)
        losses.update(generator_losses)
        return self.log_losses(losses, batch_size=len(batch["image"]))

    def _discriminator_step(self, optimizer, images: Tensor) -> dict[str, Tensor]:
        """Real vs reconstruction for the image discriminator, then lazy R1 every ``r1_every`` steps."""
        weight, r1_every = self.loss.gan, self.loss.r1_every
        self.toggle_optimizer(optimizer)
        with torch.no_grad():
            reconstruction = self.sae(images)
        discriminator = self.sae.discriminator
        losses = {
            "D_real": gan_loss(discriminator(images), real=True).mean() * weight,
            "D_rec": gan_loss(discriminator(reconstruction), real=False).mean() * weight,
        }
        self.optimize(optimizer, losses)
        self.sae.num_discriminator_iters += 1
        if self.loss.r1 > 0 and int(self.sae.num_discriminator_iters) % r1_every == 0:
            real = images.detach().requires_grad_(True)
            penalty = r1_penalty(discriminator(real), real).mean() * (0.5 * self.loss.r1)
            self.optimize(optimizer, {"D_R1": penalty * r1_every})
            losses["D_R1"] = penalty
        self.untoggle_optimizer(optimizer)
        return losses

    # ---- validation ----------------------------------------------------------------------------
    def validation_step(self, batch: Mapping, batch_idx: int) -> None:
        images, roi_masks = batch["image"], batch["roi_masks"]
        losses, _, region_decodes = self.eq2_losses(images, roi_masks)
        self.log_dict({f"val/{name}": value for name, value in losses.items()}, sync_dist=True, batch_size=len(images))
        masks = masks_from_region_decodes(region_decodes.clamp(-1, 1), threshold=self.mask_threshold)
        self.val_iou.update(masks, roi_masks.round().int())
        if self.mask_head is not None:
            logits = region_mask_logits(self.sae, self.mask_head, *self.sae.encode(images), self.decode_channels[1:])
            fast = masks_from_logits(logits, masks.shape[-2:])
            self.fast_mask_iou.update(fast, masks)
            matte = AlphaMatting().matte
            self.fast_matte_iou.update(*(matte(m.flatten(0, 1)[:, None]).view_as(m) for m in (fast, masks)))

    def on_validation_epoch_end(self) -> None:
        ious = self.val_iou.compute()
        self.val_iou.reset()
        self.log_dict({f"val/iou_{roi}": iou for roi, iou in zip(self.roi_names, ious)})
        self.log("val/mask_miou", ious.mean(), prog_bar=True)
        if self.mask_head is not None:
            matte_ious, mask_ious = self.fast_matte_iou.compute().float(), self.fast_mask_iou.compute().float()
            self.fast_matte_iou.reset()
            self.fast_mask_iou.reset()
            self.log_dict({f"val/fast_matte_iou_{roi}": iou for roi, iou in zip(self.roi_names, matte_ious)})
            self.log_dict({"val/fast_matte_iou": matte_ious.mean(), "val/fast_mask_iou": mask_ious.mean()})

    def after_fit(self, trainer: pl.Trainer, datamodule: pl.LightningDataModule) -> None:
        """Distil the mask head (``mask_head``) from the trained SMPN on the first training images
        (:func:`~l2sae.training.mask_head.distillation_images`), here in the exporting process, on the trainer's
        device."""
        settings = self.mask_head_settings
        if settings is None:
            return
        if trainer.world_size == 1 or torch.distributed.is_initialized():  # this process trained: its device
            self.to(trainer.strategy.root_device)  # (fit's teardown moved the networks to the CPU)
        # else the main process of forked/spawned ranks: it stays off the GPU (forking again after CUDA fails)
        datamodule.setup("fit")  # opens the training set where this process has not (spawned ranks trained)
        images = distillation_images(datamodule.datasets["train"], settings.images).to(self.device)
        start = time.perf_counter()
        self.mask_head, loss = distill_mask_head(
            self.sae, images, self.decode_channels[1:], self.mask_threshold, settings
        )
        if global_rank() == 0:  # (this module may be detached from its trainer: spawned ranks trained)
            seconds = time.perf_counter() - start
            log.info("mask head on %s distilled from %d images in %.1f s: loss %.4f", self.mask_head.block,
                     len(images), seconds, loss)  # fmt: skip

    def after_validation(self, metrics: Mapping[str, float]) -> None:
        """Record in the head its measured agreement with the full masks per region (``matte_iou``, exported with
        it: the editor's ``masks=auto`` reads it)."""
        if self.mask_head is None:
            return
        keys = [f"val/fast_matte_iou_{roi}" for roi in self.roi_names]
        if all(key in metrics for key in keys):
            self.mask_head.matte_iou = {roi: float(metrics[key]) for roi, key in zip(self.roi_names, keys)}
        else:  # no validation (limit_val_batches=0, an empty set): the editor's masks=auto reads it in full
            log.warning("the mask head's agreement with the full masks was not measured (no validation batches)")

    # ---- outputs -------------------------------------------------------------------------------
    @torch.no_grad()
    def visual_columns(self, images: Tensor) -> dict[str, Tensor]:
        """Grid columns (B x 3 x H x W in [-1, 1]): input, reconstruction, each ROI's decode, the masks in colour."""
        reconstruction, region_decodes = self.decode_regions(images)
        columns = {"input": images, "reconstruction": reconstruction}
        columns.update({roi: region_decodes[:, r] for r, roi in enumerate(self.roi_names)})
        masks = masks_from_region_decodes(region_decodes.clamp(-1, 1), threshold=self.mask_threshold)
        colours = MASK_COLOURS[: len(self.roi_names)].to(images)[None, :, :, None, None]
        painted = (masks.unsqueeze(2) * colours).sum(1) / masks.sum(1, keepdim=True).clamp(min=1)
        columns["masks"] = painted * 2 - 1
        return columns

    def export(self, path: str) -> None:
        extra = {
            "kind": "smpn",
            "slicing": self.slice_scheme.to_dict(),
            "image_size": self.image_size,
            "roi_names": list(self.roi_names),
            "mask_threshold": self.mask_threshold,
        }
        if self.mask_head is not None:
            extra["mask_head"] = self.mask_head.to_dict()
        save_sae(self.sae, path, extra=extra)
