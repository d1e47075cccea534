"""Helpers of the training tests (no tests here): compose conf/train.yaml for a temporary run folder, tiny SAE files,
callbacks that the tests name by ``_target_``."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import ClassVar

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# a tiny synthetic set, fast CPU steps: 2-image batches, no workers, a single validation batch
TINY_DATA = [
    "data.synthetic.n=24",
    "data.val_size=4",
    "data.test_size=4",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "data.num_workers=0",
]

# the SMPN's mask head distilled in a fraction of a second, for tests of runs rather than of the head
BRIEF_MASK_HEAD = ["model.smpn.module.mask_head.images=8", "model.smpn.module.mask_head.epochs=2"]


def compose_train(run_dir: Path, data_dir: Path, overrides: list[str] = (), tiny_data: bool = True) -> DictConfig:
    """conf/train.yaml with ``overrides``, writing into ``run_dir`` (run folder) and its parent (log dir).

    ``tiny_data``: shrink the synthetic face set and the batches (:data:`TINY_DATA`).
    Hydra's own config is set too, so ``${hydra:...}`` interpolations and W&B tags resolve as in a real run.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                *(TINY_DATA if tiny_data else []),
                f"paths.data_dir={data_dir}",
                f"paths.log_dir={run_dir.parent}",
                *overrides,
            ],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


# Eq. 2 with L1 terms only and an untrained LPIPS backbone (never downloaded): SMPNModule's ``loss`` in module tests
L1_SMPN_LOSS = {
    "reconstruction": {"l1": 1.0, "lpips": 0.0},
    "region": {"l1": 1.0, "lpips": 0.0, "foreground_weight": 1.0},
    "gan": 0.0,
    "r1": 10.0,
    "r1_every": 16,
    "lpips_net": "alex",
    "lpips_pretrained": False,
}


def tiny_sae_file(path: Path) -> Path:
    """A freshly initialised tiny SAE (with discriminators) in our checkpoint format."""
    return save_sae(SwappingAutoencoder(SAEConfig.preset("tiny")), path, extra={"kind": "smn"})


# ---- callbacks named by ``_target_`` in the tests' overrides ---------------------------------------
class CrashAfter(pl.Callback):
    """Simulates a killed run: raises once the global step reaches ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise RuntimeError("simulated crash")


class RecordStart(pl.Callback):
    """Keeps the global step, optimiser states and weights seen when training (re)starts."""

    records: ClassVar[list] = []

    def on_train_start(self, trainer, pl_module):
        RecordStart.records.append(
            {
                "global_step": trainer.global_step,
                "optimizers": [copy.deepcopy(optimizer.state_dict()) for optimizer in trainer.optimizers],
                "weights": {name: value.clone() for name, value in pl_module.state_dict().items()},
            }
        )


class RecordLearningRates(pl.Callback):
    """Keeps every optimiser's learning rate as each training batch runs."""

    records: ClassVar[list] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        RecordLearningRates.records.append([optimizer.param_groups[0]["lr"] for optimizer in trainer.optimizers])


class DumpRankWeights(pl.Callback):
    """Each DDP rank writes its SAE weights when training ends, with the files of every batch it trained on
    (``paths``) and a draw of its torch stream then (``draw``)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.paths: list[list[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.paths.append(list(batch["path"]))

    def on_train_end(self, trainer, pl_module):
        state = {**pl_module.sae.state_dict(), "draw": torch.rand(8)}
        torch.save(state, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))
        Path(self.folder, f"paths{trainer.global_rank}.json").write_text(json.dumps(self.paths))
