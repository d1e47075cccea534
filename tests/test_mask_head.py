"""The cheap mask read: a generator decode cut short at a block, the mask head, its distillation and storage,
and the editor's ``masks`` option (full | fast | auto)."""

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tiny_networks import TINY_SLICING

from l2sae.editing import L2SAEEditor
from l2sae.editing.config import editor_from_config
from l2sae.evaluation.masks import RegionIoU, SoftRegionIoU, fast_mask_agreement
from l2sae.nn import SAEConfig, SwappingAutoencoder, read_extra, save_sae
from l2sae.nn.mask_head import MaskHead, head_block, masks_from_logits, region_mask_logits
from l2sae.regions import SliceScheme
from l2sae.training.mask_head import MaskHeadSettings, distill_mask_head
from l2sae.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _tiny_sae(seed):
    torch.manual_seed(seed)
    return SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False).eval().set_noise("zero")


@pytest.fixture(scope="module")
def smpn():
    return _tiny_sae(2)


@pytest.fixture(scope="module")
def codes(smpn):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        return smpn.encode(images)


def _head(smpn, block="UpsamplingResBlock16", **options):
    torch.manual_seed(5)
    return MaskHead.for_network(smpn, block, mask_threshold=0.1, **options)


def test_a_decode_cut_short_equals_the_full_decodes_features_exactly(smpn, codes):
    channel_masks = TINY_SLICING.channel_masks(["hair", "nose"])
    for block in smpn.G.blocks:
        captured = []
        hook = getattr(smpn.G, block).register_forward_hook(
            lambda module, inputs, output, kept=captured: kept.append(output)
        )
        with torch.no_grad():
            smpn.decode_sliced(*codes, channel_masks)
        hook.remove()
        with torch.no_grad():
            features = smpn.decode_sliced(*codes, channel_masks, until=block)
        assert features.shape[:2] == (2, 2) and torch.equal(features.flatten(0, 1), captured[0]), block
        side = 64 * smpn.G.block_scale(block) // 8
        assert features.shape[2:] == (smpn.G.block_channels(block), side, side)
    with pytest.raises(ValueError, match="until: 'ToRGB' is not a block"):
        smpn.decode_sliced(*codes, channel_masks, until="ToRGB")


def test_a_decode_cut_short_runs_no_later_block(smpn, codes):
    ran = []
    hooks = [
        getattr(smpn.G, block).register_forward_pre_hook(lambda module, inputs, name=block: ran.append(name))
        for block in smpn.G.blocks
    ]
    try:
        with torch.no_grad():
            smpn.decode_sliced(*codes, TINY_SLICING.channel_masks(["eyes"]), until="UpsamplingResBlock16")
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == ["HeadResnetBlock0", "HeadResnetBlock1", "UpsamplingResBlock16"]


def test_head_logits_have_the_heads_resolution_and_masks_the_image_size(smpn, codes):
    head = _head(smpn, upscale=2)
    logits = region_mask_logits(smpn, head, *codes, TINY_SLICING.channel_masks(["hair", "skin", "eyes"]))
    assert logits.shape == (2, 3, 32, 32) == (2, 3, head.resolution(smpn, 64), head.resolution(smpn, 64))
    masks = masks_from_logits(logits, (64, 64))
    assert masks.shape == (2, 3, 64, 64) and set(masks.unique().tolist()) <= {0.0, 1.0}
    soft = masks_from_logits(logits, (64, 64), soft=True)
    assert torch.equal(soft > 0.5, masks.bool())


def test_head_block_by_side_fraction():
    quick_start = SwappingAutoencoder(SAEConfig.preset("tiny", encoder_downsamplings_structure=2), False)
    assert head_block(quick_start, 0.5) == "UpsamplingResBlock16"  # 32 of 64 px
    assert head_block(quick_start, 0.125) == "HeadResnetBlock1"  # the code's 16 px: the last block there
    with torch.device("meta"):
        ffhq256 = SwappingAutoencoder(SAEConfig.preset("ffhq256"), False)
    assert head_block(ffhq256, 0.125) == "UpsamplingResBlock16" and head_block(ffhq256, 0.25) == "UpsamplingResBlock32"


def test_head_round_trip_through_an_smpn_file(smpn, codes, tmp_path):
    head = _head(smpn, upscale=2, hidden=8, matte_iou={"hair": 0.99, "nose": 0.95})
    path = save_sae(smpn, tmp_path / "smpn.pt", extra={"kind": "smpn", "mask_head": head.to_dict()})
    stored = torch.load(path, weights_only=True)["extra"]["mask_head"]
    loaded = MaskHead.from_dict(stored)
    assert (loaded.block, loaded.upscale, loaded.hidden, loaded.mask_threshold) == ("UpsamplingResBlock16", 2, 8, 0.1)
    assert loaded.matte_iou == {"hair": 0.99, "nose": 0.95}
    assert MaskHead.from_dict(_head(smpn).to_dict()).matte_iou is None  # not measured
    features = smpn.decode_sliced(*codes, TINY_SLICING.channel_masks(["nose"]), until=loaded.block).flatten(0, 1)
    with torch.no_grad():
        assert torch.equal(loaded(features), head(features))
    with pytest.raises(ValueError, match="x.pt: mask_head: not a mask head"):
        MaskHead.from_dict({"format": "other"}, key="x.pt: mask_head")
    with pytest.raises(ValueError, match="mis-shaped"):
        MaskHead.from_dict({**stored, "hidden": 9})
    with pytest.raises(ValueError, match="mis-shaped"):
        MaskHead.from_dict({**stored, "matte_iou": [0.99]})


def _files(tmp_path, smpn, head):
    smn_path = save_sae(_tiny_sae(1), tmp_path / "smn.pt", extra={"kind": "smn"})
    extra = {"kind": "smpn", "slicing": TINY_SLICING.to_dict(), "image_size": 64, "mask_threshold": 0.1}
    if head is not None:
        extra["mask_head"] = head.to_dict()
    return smn_path, save_sae(smpn, tmp_path / f"smpn{'_head' if head else ''}.pt", extra=extra)


MEASURED_WELL = {roi: 0.98 for roi in TINY_SLICING.roi_names}  # a head's recorded validation matte IoUs


def test_editor_reads_fast_masks_from_a_file_with_a_head(smpn, tmp_path, monkeypatch):
    head = _head(smpn, upscale=2, matte_iou=MEASURED_WELL)
    smn_path, smpn_path = _files(tmp_path, smpn, head)
    fast = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32")
    full = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32", masks="full")
    assert (fast.mask_reading, full.mask_reading) == ("fast", "full") and full.mask_head is None
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    calls = []
    original = fast.smpn.decode_sliced
    monkeypatch.setattr(fast.smpn, "decode_sliced", lambda *a, **k: calls.append(k) or original(*a, **k))
    masks = fast.masks(images, ["hair", "eyes"])
    assert calls == [{"until": "UpsamplingResBlock16"}]  # one batched decode, cut short
    with torch.no_grad():
        expected = masks_from_logits(
            region_mask_logits(smpn, head, *smpn.encode(images), TINY_SLICING.channel_masks(["hair", "eyes"])), (64, 64)
        )
    assert torch.equal(masks, expected)
    assert not torch.equal(masks, full.masks(images, ["hair", "eyes"]))  # an untrained head: other masks
    edit = fast.edit_style(images, "hair", seed=1)
    assert torch.equal(edit.matte, fast.matting.matte(masks[:, :1]))


def _decodes_seen(editor, monkeypatch) -> list[tuple[int, str | None]]:
    """(regions, ``until``) of each SMPN sliced decode ``editor`` runs from now on."""
    calls = []
    original = editor.smpn.decode_sliced
    monkeypatch.setattr(
        editor.smpn,
        "decode_sliced",
        lambda s, t, channel_masks, **k: (
            calls.append((len(channel_masks), k.get("until"))) or original(s, t, channel_masks, **k)
        ),
    )
    return calls


def test_auto_reads_only_the_regions_the_head_was_measured_to_match(smpn, tmp_path, monkeypatch, caplog):
    """masks=auto: the head reads the regions whose recorded validation matte IoU reaches fast_mask_min_iou; the
    others, and all regions of a head that records none, are read in full; masks=fast reads every one."""
    head = _head(smpn, upscale=2, matte_iou={**MEASURED_WELL, "eyes": 0.95, "nose": 0.969})
    smn_path, smpn_path = _files(tmp_path, smpn, head)
    with caplog.at_level(logging.INFO, logger="l2sae.editing.editor"):
        mixed = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32")
    assert mixed.mask_reading == "mixed" and mixed.fast_rois == {"hair", "skin", "lips_mouth"}
    assert mixed.mask_reading_text() == (
        "hair, skin, lips_mouth: mask head on UpsamplingResBlock16; nose, eyes: full-resolution region decodes"
    )
    assert (
        "editor.masks=auto: hair, skin, lips_mouth: mask head on UpsamplingResBlock16; nose, eyes: full-resolution "
        "region decodes (the head's matte IoU against the full masks on validation faces: " in caplog.text
    )
    assert "eyes 0.950" in caplog.text and "needed >= 0.97" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="l2sae.editing"):
        full = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32", masks="full")  # no reason: quiet
        fast = editor_from_config(  # edit.py, evaluate.py and the app log the reading whichever it is
            {"ckpt": {"smn": smn_path, "smpn": smpn_path}, "precision": "32", "editor": {"masks": "fast"}}, "cpu"
        )
    assert caplog.messages == [
        "editor.masks=fast: hair, skin, nose, eyes, lips_mouth: mask head on UpsamplingResBlock16"
    ]
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    calls = _decodes_seen(mixed, monkeypatch)
    masks = mixed.masks(images, ["hair", "eyes", "skin"])
    assert calls == [(2, "UpsamplingResBlock16"), (1, None)]  # hair and skin by the head, eyes in full
    assert torch.equal(masks[:, 1], full.masks(images, "eyes")[:, 0])
    assert torch.equal(masks[:, [0, 2]], fast.masks(images, ["hair", "skin"]))
    assert not torch.equal(masks[:, 1], fast.masks(images, "eyes")[:, 0])  # an untrained head: other masks
    assert mixed.masks(images, "eyes").shape == (1, 1, 64, 64) and calls[2:] == [(1, None)]
    assert fast.mask_reading == "fast" and fast.fast_rois == set(TINY_SLICING.roi_names)
    lower = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32", fast_mask_min_iou=0.9)
    assert lower.mask_reading == "fast"
    with pytest.raises(ConfigError, match=r"editor.fast_mask_min_iou: expected a number in \[0, 1\], got 1.5"):
        L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32", fast_mask_min_iou=1.5)
    unmeasured = _head(smpn, upscale=2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="l2sae.editing.editor"):
        auto = L2SAEEditor(_tiny_sae(1), smpn, TINY_SLICING, mask_head=unmeasured, precision="32")
    assert auto.mask_reading == "full" and auto.mask_head is None and "not measured" in caplog.text
    assert L2SAEEditor(_tiny_sae(1), smpn, TINY_SLICING, mask_head=unmeasured, masks="fast").mask_reading == "fast"


def test_an_smpn_file_without_head_keeps_the_full_masks(smpn, tmp_path):
    smn_path, smpn_path = _files(tmp_path, smpn, None)
    auto = L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32")
    assert auto.mask_reading == "full" and auto.mask_head is None and "mask_head" not in read_extra(smpn_path)
    with pytest.raises(ConfigError, match="editor.masks: fast needs a mask head .* records none"):
        L2SAEEditor.from_checkpoints(smn_path, smpn_path, precision="32", masks="fast")


def test_mask_option_errors(smpn, caplog):
    smn = _tiny_sae(1)
    with pytest.raises(ConfigError, match="editor.masks: expected one of auto, fast, full, got 'quick'"):
        L2SAEEditor(smn, smpn, TINY_SLICING, masks="quick")
    with pytest.raises(ConfigError, match="editor.mask_head: made for 7 feature channels"):
        L2SAEEditor(smn, smpn, TINY_SLICING, mask_head=MaskHead("UpsamplingResBlock16", 7), masks="fast")
    with pytest.raises(ConfigError, match="block 'UpsamplingResBlock128' is not a block"):
        L2SAEEditor(smn, smpn, TINY_SLICING, mask_head=MaskHead("UpsamplingResBlock128", 7))
    head = _head(smpn)
    with pytest.raises(ConfigError, match="predicts the masks of threshold 0.1, not 0.3"):
        L2SAEEditor(smn, smpn, TINY_SLICING, mask_head=head, masks="fast", mask_threshold=0.3)
    with caplog.at_level(logging.INFO, logger="l2sae.editing.editor"):
        assert L2SAEEditor(smn, smpn, TINY_SLICING, mask_head=head, mask_threshold=0.3).mask_reading == "full"
    assert caplog.messages[-1].endswith(
        "full-resolution region decodes (the mask head predicts the masks of threshold 0.1, not 0.3)"
    )


def test_settings_are_checked():
    assert MaskHeadSettings.from_config({"upscale": 4}).upscale == 4
    with pytest.raises(ConfigError, match="mask_head: unknown key"):
        MaskHeadSettings.from_config({"steps": 3})
    with pytest.raises(ConfigError, match="mask_head.side_fraction: expected a number in"):
        MaskHeadSettings.from_config({"side_fraction": 2})
    with pytest.raises(ConfigError, match="mask_head.epochs: expected an integer >= 1"):
        MaskHeadSettings.from_config({"epochs": 0})


def test_distillation_trains_only_the_head_and_leaves_the_smpn_as_it_was():
    smpn = _tiny_sae(2).train().set_noise("random")
    before = {name: value.clone() for name, value in smpn.state_dict().items()}
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    settings = MaskHeadSettings(side_fraction=0.25, upscale=2, hidden=8, images=4, epochs=10, batch_size=8)
    channel_masks = TINY_SLICING.channel_masks(["hair", "skin"])
    head, loss = distill_mask_head(smpn, images, channel_masks, 0.1, settings)
    assert head.block == "UpsamplingResBlock16" and not head.training and loss < 0.69  # better than chance
    assert all(torch.equal(before[name], value) for name, value in smpn.state_dict().items())
    assert smpn.training and {m.mode for m in smpn.G.modules() if hasattr(m, "mode")} == {"random"}


def test_soft_region_iou_is_the_hard_iou_on_masks_and_min_over_max_on_mattes():
    predicted = torch.zeros(2, 2, 4, 4)
    target = torch.zeros(2, 2, 4, 4)
    predicted[:, 0, :2] = 1  # 16 pixels over the batch
    target[:, 0, 1:3] = 1  # 8 shared: IoU 8 / 24
    predicted[:, 1], target[:, 1] = 0.5, 1.0
    soft, hard = SoftRegionIoU(2), RegionIoU(["a", "b"])
    soft.update(predicted, target)
    hard.update(predicted[:, :1].expand(-1, 2, -1, -1), target[:, :1].expand(-1, 2, -1, -1))
    assert soft.compute().tolist() == pytest.approx([1 / 3, 0.5]) and hard.compute()["a"] == pytest.approx(1 / 3)


def _trained_quick_start(quick_start) -> Path | None:
    """This checkout's trained quick start (L2SAE_QUICKSTART_RUN, else logs/latest): the run folder if it has both
    networks (a run of the SMPN stage alone has no smn.pt), mIoU >= 0.6 and a mask head distilled with
    ``quick_start``'s settings from its data, its validation agreement recorded; else None."""
    folder = Path(os.environ.get("L2SAE_QUICKSTART_RUN", REPO / "logs" / "latest"))
    if not all((folder / name).is_file() for name in ("metrics.json", "config.yaml", "smn.pt", "smpn.pt")):
        return None
    run = OmegaConf.load(folder / "config.yaml")
    settings = [
        OmegaConf.to_container(config.model.smpn.module.mask_head, resolve=True) for config in (run, quick_start)
    ]
    data = [OmegaConf.to_container(config.data, resolve=True) for config in (run, quick_start)]
    miou = json.loads((folder / "metrics.json").read_text()).get("val/mask_miou", 0)
    head = read_extra(folder / "smpn.pt").get("mask_head", {}).get("matte_iou") is not None  # a measured head
    return folder if head and miou >= 0.6 and settings[0] == settings[1] and data[0] == data[1] else None


def _editors_with_a_head_distilled_from_the_fixture(data, settings: MaskHeadSettings) -> dict[str, L2SAEEditor]:
    """{"fast", "full"}: editors on the quick start's SMPN (tests/fixtures/quickstart_smpn.pt: smpn.pt of `python
    train.py` at 3d5a4f5, 1.1 MB, no head) with a head distilled here as training's last step does."""
    from l2sae.nn import load_sae
    from l2sae.training.mask_head import distillation_images

    path = REPO / "tests" / "fixtures" / "quickstart_smpn.pt"
    smpn, extra = load_sae(path, with_discriminators=False), read_extra(path)
    slicing = SliceScheme.from_dict(extra["slicing"])
    images = distillation_images(data.train_dataloader().dataset, settings.images)
    head, _ = distill_mask_head(smpn, images, slicing.channel_masks(), extra["mask_threshold"], settings)
    return {
        masks: L2SAEEditor(
            smpn, smpn, slicing, mask_head=head, masks=masks, mask_threshold=extra["mask_threshold"], precision="32"
        )
        for masks in ("fast", "full")
    }


@pytest.mark.slow
def test_the_quick_starts_cheap_masks_match_its_full_masks(tmp_path):
    """Goal of issue 16: matte IoU >= 0.97 for every region on the quick start's validation faces (its own
    data/synthfaces, drawn there if missing). After `python train.py` (README command 1) its trained head is checked,
    and the IoU training logged must be the editor's; without one (a fresh clone, CI) a head is distilled here from
    the quick start's SMPN with the quick start's settings."""
    from hydra.utils import instantiate
    from train_helpers import compose_train

    cfg = compose_train(tmp_path / "run", REPO / "data", ["data.num_workers=0"], tiny_data=False)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    folder = _trained_quick_start(cfg)
    if folder is None:
        editors = _editors_with_a_head_distilled_from_the_fixture(
            data, MaskHeadSettings.from_config(cfg.model.smpn.module.mask_head)
        )
    else:
        editors = {  # the default (masks=auto) reads the run's head
            reading: L2SAEEditor.from_checkpoints(folder / "smn.pt", folder / "smpn.pt", precision="32", masks=masks)
            for reading, masks in (("fast", "auto"), ("full", "full"))
        }
    assert editors["fast"].mask_reading == "fast" and editors["full"].mask_reading == "full"
    mattes, masks = fast_mask_agreement(editors["fast"], editors["full"], data.val_dataloader())
    assert min(mattes.values()) >= 0.97, mattes
    assert min(masks.values()) >= 0.95, masks
    if folder is not None:
        recorded = json.loads((folder / "metrics.json").read_text())
        assert recorded["val/fast_matte_iou"] == pytest.approx(sum(mattes.values()) / len(mattes), abs=1e-3)
