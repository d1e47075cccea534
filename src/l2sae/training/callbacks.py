"""Training callbacks: image grids for every logger, a guard that stops on a non-finite loss, checkpoints on a
step schedule that survives uneven step counts, and the random-number states a resume restores."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from torch import Tensor
from torchvision.utils import make_grid

from l2sae.editing.editor import L2SAEEditor, load_for_inference
from l2sae.nn import SwappingAutoencoder
from l2sae.utils.images import write_image

log = logging.getLogger(__name__)


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``every_n_train_steps`` saves happen once the global step has reached or passed
    the next due step, and whose ``last.ckpt`` is written when training ends.

    Lightning saves only when ``global_step % every_n_train_steps == 0``, but the SMN's step moves by 2 per batch
    plus 1 per lazy-R1 step, so most due steps were jumped over; and ``last.ckpt`` was left at the last periodic
    save when a stage ended, so resuming a finished stage retrained it from there.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self._next_due = self._due_after(trainer.global_step)

    def _due_after(self, step: int) -> int:
        return (step // self._every_n_train_steps + 1) * self._every_n_train_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._every_n_train_steps < 1 or trainer.global_step < self._next_due:
            return
        self._next_due = self._due_after(trainer.global_step)
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class RandomStates(pl.Callback):
    """Saves the random-number states (torch, CUDA, numpy, python) in every checkpoint and restores them when
    training resumes, so the resumed steps draw the same noise, crops and patches as an uninterrupted run.

    The states are those at the checkpoint (after the batch that ended there); they are restored when training
    restarts, after the first batch was already read. Data drawn while reading that batch (random flips) is
    therefore new, unless nothing random happens there (``data.hflip=false``); see the README's resume notes.
    """

    def __init__(self) -> None:
        self._to_restore: dict | None = None

    def state_dict(self) -> dict:
        numpy_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "rest": list(numpy_state[2:])},
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        state, self._to_restore = self._to_restore, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), *state["numpy"]["rest"]))
        random.setstate(state["python"])
        log.info("resumed at global step %d with the random-number states of the checkpoint", trainer.global_step)


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the term and the step."""


class NaNGuard(pl.Callback):
    """Stop training when a loss term returned by ``training_step`` is not finite.

    It raises :class:`NonFiniteLossError` naming the first bad term and the global step at which the batch
    started, before the checkpoint callback of that batch runs, so the last checkpoint on disk is the last
    good one. Under DDP all ranks stop together.
    """

    def __init__(self):
        self._batch_start_step = 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch_start_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        bad = [name for name, value in (outputs or {}).items() if not torch.isfinite(value).all()]
        if not trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            return
        checkpoints = [c.last_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        last_good = next((path for path in checkpoints if path), None)
        term = f"loss term {bad[0]!r} = {outputs[bad[0]].item()}" if bad else "a loss term on another rank"
        raise NonFiniteLossError(
            f"non-finite {term} at global step {self._batch_start_step} (epoch {trainer.current_epoch}, "
            f"batch {batch_idx}); training stopped. Last good checkpoint: {last_good or 'none saved yet'}"
        )


class ImageGrid(pl.Callback):
    """After each validation, draw a grid for the first ``num_images`` validation images and log it.

    Columns come from the module's ``visual_columns(images)`` (input | reconstruction | ... in [-1, 1]);
    for a module with ``predict_masks`` (the SMPN) an ``edit`` column is added: what ``edit.py`` makes of
    the image, :meth:`L2SAEEditor.edit_style` of ``edit_roi`` (strength ``edit_strength``, seed ``seed``)
    with the SMN (the SMPN's ``init_checkpoint``) and the SMPN being trained. The grid is written
    atomically to ``<dirpath>/<filename>`` and sent to every logger: W&B and TensorBoard as images, CSV
    loggers as a PNG per step in their folder.
    """

    def __init__(
        self,
        dirpath: str,
        filename: str = "grid.png",
        num_images: int = 4,
        edit_roi: str | None = "hair",
        edit_strength: float = 1.5,
        seed: int = 0,
    ):
        self.path = Path(dirpath) / filename
        self.num_images = num_images
        self.edit_roi = edit_roi
        self.edit_strength = edit_strength
        self.seed = seed
        self._images: Tensor | None = None
        self._smn: tuple[str, SwappingAutoencoder] | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if batch_idx == 0 and dataloader_idx == 0:
            self._images = batch["image"][: self.num_images].detach()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._images is None:
            return
        columns = pl_module.visual_columns(self._images)
        if self.edit_roi and hasattr(pl_module, "predict_masks"):
            columns["edit"] = self.edit(pl_module, self._images)
        grid = self.draw(columns)
        self._save(grid)
        caption = " | ".join(columns)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="grid", images=[grid], caption=[caption], step=trainer.global_step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("grid", grid, trainer.global_step)
            elif isinstance(logger, CSVLogger):
                write_image(grid * 2 - 1, Path(logger.log_dir) / "images" / f"grid-step{trainer.global_step:07d}.png")

    def edit(self, pl_module, images: Tensor) -> Tensor:
        """``edit_roi`` of ``images`` (B x 3 x H x W in [-1, 1]) restyled by the editor (float32), as edit.py does."""
        smn = self._load_smn(pl_module.hparams.init_checkpoint, images.device)
        editor = L2SAEEditor(
            smn,
            pl_module.sae,  # the editor runs an inference copy: training goes on with the module's own
            pl_module.slice_scheme,
            mask_threshold=pl_module.mask_threshold,
            precision="32",
            image_size=images.shape[-1],
        )
        return editor.edit_style(images, self.edit_roi, strength=self.edit_strength, seed=self.seed).images

    def _load_smn(self, path: str, device: torch.device) -> SwappingAutoencoder:
        if self._smn is None or self._smn[0] != path:
            self._smn = (path, load_for_inference(path, "cpu"))
        return self._smn[1].to(device)

    @staticmethod
    def draw(columns: Mapping[str, Tensor]) -> Tensor:
        """Columns (each B x 3 x H x W in [-1, 1]) -> one 3 x H' x W' image in [0, 1], a row per sample."""
        stacked = torch.stack([column.float().clamp(-1, 1) for column in columns.values()], dim=1)
        return make_grid(stacked.flatten(0, 1).add(1).div(2).cpu(), nrow=len(columns), padding=2, pad_value=1.0)

    def _save(self, grid: Tensor) -> None:
        write_image(grid * 2 - 1, self.path)
