"""L2SAEDataModule: config checks, loaders over a synthetic set, skipped-file counts, the Hydra configs."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from l2sae.data import L2SAEDataModule, LogSkippedFiles
from l2sae.data.layout import IMAGE_DIR
from l2sae.utils.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
SYNTHETIC = {"n": 36, "size": 32, "seed": 0}


def module(root, **options):
    settings = dict(
        image_size=32, batch_size=4, num_workers=0, split_scheme="index", val_size=6, test_size=4, synthetic=SYNTHETIC
    )
    return L2SAEDataModule(root, **(settings | options))


@pytest.mark.parametrize(
    "options, key",
    [
        ({"batch_size": 7}, r"data\.batch_size: expected an even number"),
        ({"batch_size": 0}, r"data\.batch_size"),
        ({"eval_batch_size": 3}, r"data\.eval_batch_size"),
        ({"layout": "zip"}, r"data\.layout"),
        ({"layout": "image_folder", "split_scheme": "celeba"}, r"data\.split_scheme: an image folder"),
        ({"split_scheme": "random"}, r"data\.split_scheme"),
        ({"image_size": 4}, r"data\.image_size"),
        ({"num_workers": -1}, r"data\.num_workers"),
        ({"val_size": -2}, r"data\.val_size"),
        ({"regions": {"eyes": ["l_eye"]}}, r"data\.hflip"),
        ({"regions": {"eyes": ["iris"]}}, r"data\.regions\.eyes"),
        ({"on_bad_file": "skip", "cache": False}, r"data\.on_bad_file"),
        ({"synthetic": {"n": 10, "colour": 1}}, r"data\.synthetic: unknown key"),
        ({"synthetic": {"n": 0}}, r"data\.synthetic\.n"),
        ({"synthetic": {"n": 10, "size": 2}}, r"data\.synthetic\.size"),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, options, key):
    with pytest.raises(ConfigError, match=key):
        module(tmp_path / "never_created", **options)
    assert not (tmp_path / "never_created").exists()


def test_loaders_over_the_synthetic_set(tmp_path):
    data = module(tmp_path / "synthfaces")
    assert data.roi_names == ("hair", "skin", "nose", "eyes", "lips_mouth")
    data.prepare_data()
    assert (tmp_path / "synthfaces" / IMAGE_DIR / "35.jpg").is_file()
    data.setup("fit")
    train = list(data.train_dataloader())
    assert len(data.datasets["train"]) == 26 and len(train) == 6  # drop_last: 26 // 4
    batch = train[0]
    assert batch["image"].shape == (4, 3, 32, 32) and batch["roi_masks"].shape == (4, 5, 32, 32)
    assert batch["roi_names"] == data.roi_names and len(batch["path"]) == 4
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert data.datasets["train"].hflip and not data.datasets["val"].hflip
    first, second = ([p for b in data.val_dataloader() for p in b["path"]] for _ in range(2))
    assert first == second == [str(tmp_path / "synthfaces" / IMAGE_DIR / f"{i}.jpg") for i in range(26, 32)]
    test_paths = [p for b in data.test_dataloader() for p in b["path"]]  # set up on demand
    assert [Path(p).stem for p in test_paths] == ["32", "33", "34", "35"]


def test_every_batch_is_even(tmp_path):
    data = module(tmp_path / "synthfaces", val_size=5, eval_batch_size=2)
    data.prepare_data()
    assert [len(b["path"]) for b in data.val_dataloader()] == [2, 2]  # the fifth image is left out


def test_worker_processes_read_the_cache(tmp_path):
    data = module(tmp_path / "synthfaces", num_workers=2)
    data.prepare_data()
    loader = data.val_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2 and not loader.pin_memory  # no CUDA here
    assert [Path(p).stem for b in loader for p in b["path"]] == [str(i) for i in range(26, 32)]


def test_sizes_checked_against_the_data(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.batch_size: 30 is more than the 26 training images"):
        module(tmp_path / "synthfaces", batch_size=30).setup("fit")
    with pytest.raises(ConfigError, match=r"data\.eval_subset_size: 9"):
        module(tmp_path / "synthfaces", eval_subset_size=9).setup("validate")
    data = module(tmp_path / "synthfaces", train_subset_size=8, eval_subset_size=4)
    data.setup("fit")
    assert len(data.datasets["train"]) == 8 and len(data.datasets["val"]) == 4


def test_skipped_files_are_counted_and_logged_each_epoch(tmp_path):
    data = module(tmp_path / "synthfaces", on_bad_file="skip")
    data.prepare_data()
    (tmp_path / "synthfaces" / IMAGE_DIR / "3.jpg").write_bytes(b"broken")
    data = module(tmp_path / "synthfaces", on_bad_file="skip")  # the changed file invalidates the train cache
    data.setup("fit")
    assert data.skipped_counts() == {"train": 1, "val": 0}
    logged = {}
    pl_module = SimpleNamespace(log=lambda name, value, **kwargs: logged.__setitem__(name, value))
    LogSkippedFiles().on_train_epoch_end(SimpleNamespace(datamodule=data), pl_module)
    assert logged == {"data/skipped_train": 1.0, "data/skipped_val": 0.0}


def test_image_folder_layout_gives_images_only(tmp_path):
    module(tmp_path / "faces").prepare_data()  # draw a set, then read its images as a plain folder
    data = module(tmp_path / "faces", layout="image_folder", synthetic=None, hflip=False)
    assert data.roi_names == ()
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"image", "path"} and batch["image"].shape == (4, 3, 32, 32)


@pytest.mark.parametrize(
    "name, layout, rois",
    [("synthfaces", "celebamask_hq", 5), ("celebamask_hq", "celebamask_hq", 5), ("ffhq", "image_folder", 0)],
)
def test_hydra_configs_instantiate(tmp_path, name, layout, rois):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+data={name}", f"+paths.data_dir={tmp_path}"])
    data = instantiate(cfg.data)
    assert isinstance(data, L2SAEDataModule) and data.layout == layout and len(data.roi_names) == rois
    assert Path(data.root).parent == tmp_path and data.batch_size % 2 == 0
    assert not tmp_path.joinpath(Path(data.root).name).exists()  # nothing is read or written yet
    if name == "synthfaces":
        assert data.synthetic == {"n": 800, "size": 64, "seed": 0}


def test_region_groupings_are_chosen_by_name(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            overrides=["+data=synthfaces", f"+paths.data_dir={tmp_path}", "data/regions=with_brows_and_glasses"]
        )
    data = instantiate(cfg.data)
    assert data.region_parts["eyes"] == ("l_eye", "r_eye", "l_brow", "r_brow", "eye_g")
    assert data.synthetic["size"] == data.image_size == 64


def test_lightning_trainer_runs_the_hooks(tmp_path):
    import pytorch_lightning as pl

    class MeanImage(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def training_step(self, batch, batch_index):
            return ((batch["image"] * batch["roi_masks"][:, :1]).mean() - self.weight) ** 2

        def validation_step(self, batch, batch_index):
            self.log("val/mean", batch["image"].mean(), batch_size=len(batch["path"]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LogSkippedFiles()],
        default_root_dir=tmp_path,
    )
    trainer.fit(MeanImage(), datamodule=module(tmp_path / "synthfaces"))
    assert trainer.callback_metrics["data/skipped_train"] == 0 and "val/mean" in trainer.callback_metrics
