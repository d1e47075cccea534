"""LightningDataModule over CelebAMask-HQ-style sets (masks) and image folders (FFHQ), configured by ``conf/data``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from l2sae.data.cache import check_on_bad_file
from l2sae.data.celebamask_hq import CelebAMaskHQ, check_flip_symmetric, check_image_size
from l2sae.data.image_folder import ImageFolder
from l2sae.data.splits import check_scheme, check_sizes
from l2sae.data.synthfaces import ensure_synthfaces
from l2sae.regions import DEFAULT_REGION_PARTS, validate_region_parts
from l2sae.utils.choices import Choice
from l2sae.utils.errors import ConfigError
from l2sae.utils.images import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

# the dataset layouts (the ``data.layout`` setting)
Layout = Choice("Layout", {name: name for name in ("celebamask_hq", "image_folder")})
SYNTHETIC_KEYS = ("n", "size", "seed", "partition")


def collate_samples(samples: Sequence[dict]) -> dict:
    """Stack a list of samples; ``roi_names`` (the same for every sample) stays one tuple, ``path`` a list."""
    batch = default_collate([{key: value for key, value in sample.items() if key != "roi_names"} for sample in samples])
    if "roi_names" in samples[0]:
        batch["roi_names"] = samples[0]["roi_names"]
    return batch


class EpochShuffle(Sampler[int]):
    """Indices 0..size-1 in a new order each epoch, drawn from ``(seed, epoch)`` alone (not the global RNG).

    Iterating it again gives the next epoch's order. ``start``: samples of the first epoch already trained on
    (a resumed run), skipped once, so a resume continues the data stream where the checkpoint left it.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, start: int = 0) -> None:
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[self.start :].tolist()
        self.epoch, self.start = self.epoch + 1, 0
        return iter(order)


def check_even_batch(value: int, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
        raise ConfigError(f"{key}: expected an even number >= 2 (the SAE swaps codes within pairs), got {value!r}")


class L2SAEDataModule(pl.LightningDataModule):
    """Train / val / test loaders for the SAE trainings.

    ``layout``: 'celebamask_hq' (samples with ``image``, ``roi_masks``, ``roi_names``, ``path``;
    see :class:`~l2sae.data.CelebAMaskHQ`) or 'image_folder' (``image``, ``path``).
    ``synthetic``: ``{n, size, seed[, partition]}`` to draw the synthetic face set into ``root`` on
    ``prepare_data`` when it is missing or was drawn with other settings.
    Batches are always even-sized: ``batch_size`` / ``eval_batch_size`` must be even, training drops
    the last incomplete batch, and an odd val/test set loses its last image.
    ``train_subset_size`` / ``eval_subset_size`` keep fixed random subsets (seed ``subset_seed``)
    of the training / the val and test splits (the paper evaluates on 862 images). ``seed``: the training
    order's (None: the global seed when the module is made, ``torch.initial_seed()``); under DDP it must be the
    same on every rank: each rank reads its share of that one order.
    Unreadable files (``on_bad_file='skip'``) are counted in :meth:`skipped_counts`;
    :class:`LogSkippedFiles` logs them once per epoch. A file of more than ``max_pixels`` pixels counts as unreadable.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        layout: str = "celebamask_hq",
        image_size: int = 256,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        hflip: bool = True,
        regions: Mapping[str, Sequence[str]] | None = None,
        split_scheme: str = "celeba",
        val_size: int = 0,
        test_size: int = 0,
        train_subset_size: int | None = None,
        eval_subset_size: int | None = None,
        subset_seed: int = 0,
        partition_file: str | os.PathLike | None = None,
        on_bad_file: str = "error",
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        synthetic: Mapping | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        seed: int | None = None,
    ):
        super().__init__()
        layout = Layout.parse(layout, "data.layout")
        if layout == "image_folder" and split_scheme != "index":
            raise ConfigError(f"data.split_scheme: an image folder is split by 'index', got {split_scheme!r}")
        check_image_size(image_size)
        if not isinstance(hflip, bool):
            raise ConfigError(f"data.hflip: expected true or false, got {hflip!r}")
        check_even_batch(batch_size, "data.batch_size")
        if eval_batch_size is not None:
            check_even_batch(eval_batch_size, "data.eval_batch_size")
        check_sizes(
            num_workers=num_workers,
            val_size=val_size,
            test_size=test_size,
            train_subset_size=train_subset_size,
            eval_subset_size=eval_subset_size,
        )
        check_scheme(split_scheme)
        check_on_bad_file(on_bad_file, cache)
        self.region_parts = {}
        if layout == "celebamask_hq":
            self.region_parts = validate_region_parts(
                DEFAULT_REGION_PARTS if regions is None else regions, "data.regions"
            )
            if hflip:
                check_flip_symmetric(self.region_parts)
        self.synthetic = _check_synthetic(synthetic)
        self.root, self.layout, self.image_size = os.fspath(root), layout, image_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory, self.hflip = num_workers, pin_memory, hflip
        self.split_options = {
            "val_size": val_size,
            "test_size": test_size,
            "subset_seed": subset_seed,
            "on_bad_file": on_bad_file,
            "cache": cache,
            "cache_dir": cache_dir,
            "cache_workers": num_workers,
            "max_pixels": max_pixels,
        }
        if layout == "celebamask_hq":
            self.split_options |= {
                "regions": self.region_parts,
                "split_scheme": split_scheme,
                "partition_file": partition_file,
            }
        self.subset_sizes = {"train": train_subset_size, "val": eval_subset_size, "test": eval_subset_size}
        self.seed = torch.initial_seed() if seed is None else seed  # the training order's: the same on every rank
        self.datasets: dict[str, CelebAMaskHQ | ImageFolder] = {}

    @property
    def roi_names(self) -> tuple[str, ...]:
        """Region names in the order of ``roi_masks`` (empty for image folders)."""
        return tuple(self.region_parts)

    def make_dataset(self, split: str) -> CelebAMaskHQ | ImageFolder:
        """The dataset of ``split`` ('train' | 'val' | 'test'); only training images are flipped."""
        options = {
            **self.split_options,
            "subset_size": self.subset_sizes[split],
            "subset_key": "data.train_subset_size" if split == "train" else "data.eval_subset_size",
            "hflip": self.hflip and split == "train",
        }
        dataset_class = CelebAMaskHQ if self.layout == "celebamask_hq" else ImageFolder
        return dataset_class(self.root, split=split, image_size=self.image_size, **options)

    def prepare_data(self) -> None:
        """Draw the synthetic set if configured, and build the train / val caches (once per node)."""
        if self.synthetic is not None:
            ensure_synthfaces(self.root, **self.synthetic)
        for split in ("train", "val"):
            self.make_dataset(split)

    def setup(self, stage: str | None = None) -> None:
        """Open the datasets of ``stage`` (building caches that are missing); draws a missing synthetic set."""
        if self.synthetic is not None:  # after prepare_data a cheap check of the set's manifest
            ensure_synthfaces(self.root, **self.synthetic)
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage, ("train", "val", "test")):
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)
        train = self.datasets.get("train")
        if train is not None and len(train) < self.batch_size:
            raise ConfigError(f"data.batch_size: {self.batch_size} is more than the {len(train)} training images")

    def skipped_files(self) -> dict[str, list[str]]:
        """Unreadable files left out of each set-up split (``on_bad_file='skip'``)."""
        return {split: dataset.skipped_files for split, dataset in self.datasets.items()}

    def skipped_counts(self) -> dict[str, int]:
        return {split: len(files) for split, files in self.skipped_files().items()}

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset: Dataset = self.datasets[split]
        if not train and len(dataset) % 2:
            log.info("%s set has an odd number of images; its last image is left out", split)
            dataset = Subset(dataset, range(len(dataset) - 1))
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=self._training_order(len(dataset)) if train else None,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds: not the global RNG
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_samples,
        )

    def _training_order(self, size: int) -> EpochShuffle:
        """The training order from the run's seed; when Lightning resumes a run, from the checkpoint's position
        (its epoch and, on one process, the batches of that epoch already trained on)."""
        trainer = self.trainer
        if trainer is None:
            return EpochShuffle(size, self.seed)
        resuming = trainer.fit_loop.restarting
        start = trainer.fit_loop.epoch_loop.batch_progress.current.processed * self.batch_size if resuming else 0
        if start and trainer.world_size > 1:  # Lightning's DistributedSamplerWrapper needs whole epochs
            log.warning("resuming under DDP: the interrupted epoch's data is read again from its first batch")
            start = 0
        return EpochShuffle(size, self.seed, epoch=trainer.current_epoch, start=start)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


class LogSkippedFiles(pl.Callback):
    """Logs ``data/skipped_<split>``, the number of unreadable files left out, at the end of every training epoch."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        if isinstance(datamodule, L2SAEDataModule):
            for split, count in datamodule.skipped_counts().items():
                pl_module.log(f"data/skipped_{split}", float(count), rank_zero_only=True)


def _check_synthetic(synthetic: Mapping | None) -> dict | None:
    if synthetic is None:
        return None
    unknown = set(synthetic) - set(SYNTHETIC_KEYS)
    if unknown:
        raise ConfigError(f"data.synthetic: unknown key(s) {sorted(unknown)}; expected {', '.join(SYNTHETIC_KEYS)}")
    synthetic = dict(synthetic)
    if not isinstance(synthetic.get("n"), int) or synthetic["n"] < 1:
        raise ConfigError(f"data.synthetic.n: expected a positive number of faces, got {synthetic.get('n')!r}")
    check_image_size(synthetic.get("size", 128), "data.synthetic.size")
    return synthetic
