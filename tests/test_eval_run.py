"""``evaluate.py`` / ``l2sae.evaluation.run``: our edits scored per batch, config checks, the whole run."""

import csv
import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_script
from eval_helpers import ChannelStatistics
from hydra import compose, initialize_config_dir

from l2sae.editing import AlphaMatting, L2SAEEditor
from l2sae.evaluation.fid import INCEPTION_WEIGHTS
from l2sae.evaluation.lpips_metric import BACKBONE_WEIGHTS, build_lpips
from l2sae.evaluation.run import GLOBAL_EDIT, OURS, Plan, check_config, score_batch
from l2sae.evaluation.scoring import EditScores
from l2sae.evaluation.weights import MissingWeightsError, hub_checkpoint_path
from l2sae.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
EXTRACTOR = "eval_helpers.ChannelStatistics"


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


def left_half_masks(monkeypatch, editor):
    """Make the SMPN draw every region on the left half, so masks and mattes are known."""

    def decode_sliced(structure, texture, channel_masks):
        images = -torch.ones(structure.shape[0], channel_masks.shape[0], 3, SIZE, SIZE)
        images[..., : SIZE // 2] = 1.0
        return images

    monkeypatch.setattr(editor.smpn, "decode_sliced", decode_sliced)


@pytest.fixture(scope="module")
def lpips_model():
    return build_lpips(random_backbone=True)


def test_our_edits_leave_every_pixel_outside_the_matte_unchanged(checkpoints, lpips_model, monkeypatch):
    editor = L2SAEEditor.from_checkpoints(*checkpoints, matting=AlphaMatting(kernel_size=9))
    left_half_masks(monkeypatch, editor)
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 2 - 1
    plan = Plan(
        rois=("hair", "nose"),
        strength=2.0,
        seeds=(5,),
        global_edit=False,
        baselines={},
        device=torch.device("cpu"),
        timing_images=0,
        timing_warmup=0,
        enabled={"fid": True, "lpips": True},
    )
    faces = editor.encode(images)
    mattes = torch.cat([editor.edit_style(faces, roi, 2.0, 5).matte for roi in plan.rois], dim=1)
    assert 0 < (mattes > 0).float().mean() < 1  # a matte that covers part of the image
    batch = {"image": images, "roi_masks": (mattes > 0).float(), "path": ["a/0.jpg", "a/1.jpg"]}
    scores = EditScores([OURS], plan.rois, ChannelStatistics(), lpips_model)
    score_batch(editor, scores, {}, plan, batch, roi_index=[0, 1])
    rows = {row["region"]: row for row in scores.rows()}
    for region in ("hair", "nose", "all"):
        assert rows[region]["leakage_outside"] == 0.0  # bit-exact outside the matte
        assert rows[region]["psnr_outside"] == rows[region]["psnr_band"] == math.inf
        assert rows[region]["leakage_inside"] > 0.01
        assert rows[region]["leakage_pairs"] == rows[region]["preservation_pairs"] == (2 if region != "all" else 4)
    assert rows["hair"]["mask_iou"] < 1.0  # the blurred matte is wider than the predicted half
    # against the sharp half instead of the matte, the blur's spill shows as (small) leakage
    hair_only = dataclasses.replace(plan, rois=("hair",))
    scores = EditScores([OURS], hair_only.rois, ChannelStatistics(), lpips_model)
    half = torch.zeros(2, 1, SIZE, SIZE)
    half[..., : SIZE // 2] = 1.0
    score_batch(editor, scores, {}, hair_only, batch | {"roi_masks": half}, roi_index=[0])
    hair = scores.rows()[0]
    assert hair["mask_iou"] == 1.0
    assert 0 < hair["leakage_outside"] < hair["leakage_inside"]
    assert 10 < hair["psnr_outside"] < math.inf and hair["psnr_band"] < hair["psnr_outside"]  # the spill is at the edge
    assert hair["ssim_band"] < hair["ssim_outside"] < 1 and hair["lpips_band"] > hair["lpips_outside"] > 0


class OneFace:
    """A stand-in for dlib's describer: the same descriptor for every image, no face where the image is black."""

    def __call__(self, images):
        return [None if image.max() <= -1 else np.ones(128) for image in images]


def hair_plan_with_baseline(folder: Path, global_edit: bool, identity: bool) -> Plan:
    """A plan scoring hair edits (seed 0, 2 diversity seeds, style swaps) beside the baseline ``other`` in ``folder``."""
    return Plan(
        rois=("hair",),
        strength=1.0,
        seeds=(0,),
        global_edit=global_edit,
        baselines={"other": folder},
        device=torch.device("cpu"),
        timing_images=0,
        timing_warmup=0,
        enabled={"fid": True, "lpips": True, "identity": identity},
        diversity_seeds=2,
        swap_style=True,
    )


def test_diversity_swaps_and_a_baseline_with_missing_faces_scored_on_what_is_present(
    checkpoints, lpips_model, tmp_path
):
    from l2sae.evaluation.baselines import Pairing, scan_baseline

    editor = L2SAEEditor.from_checkpoints(*checkpoints)
    images = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    images[3] = -1  # a black image: no face found
    masks = torch.zeros(4, 1, SIZE, SIZE)
    masks[..., 8:40, 16:48] = 1
    for stem in ("0", "3"):  # edits of images 0 and 3 only; 1 and 2 are missing
        write_png(tmp_path / "other" / "hair" / f"{stem}.png")
    folder = scan_baseline(tmp_path / "other", ["hair"], "other", key="baselines.other.dir")
    plan = hair_plan_with_baseline(tmp_path / "other", global_edit=False, identity=True)
    assert plan.style_seeds == (0, 1) and dataclasses.replace(plan, seeds=(1, 5), diversity_seeds=4).style_seeds == (
        1,
        5,
        0,
        2,
    )
    scores = EditScores([OURS, "other"], plan.rois, ChannelStatistics(), lpips_model, describer=OneFace())
    pairings = {"other": Pairing(folder)}
    batch = {"image": images, "roi_masks": masks, "path": [f"x/{index}.png" for index in range(4)]}
    score_batch(editor, scores, pairings, plan, batch, roi_index=[0])
    rows = {(row["method"], row["region"]): row for row in scores.rows()}
    ours, other = rows[(OURS, "hair")], rows[("other", "hair")]
    assert ours["diversity"] > 0 and ours["diversity_images"] == 4 and ours["diversity_seeds"] == 2
    assert ours["swap_pairs"] == 4 and ours["swap_lpips"] >= 0 and ours["swap_lpips_input"] > 0
    assert (
        ours["identity_pairs"] == 3
        and ours["identity_missed_inputs"] == 1
        and ours["identity_similarity"] == pytest.approx(1)
    )
    assert other["preservation_pairs"] == other["lpips_pairs"] == other["fid_images"] == 2  # scored on what is there
    assert other["identity_pairs"] == 1 and other["identity_missed_inputs"] == 1  # image 3 has no face
    assert other["diversity"] is None and other["swap_lpips"] is None  # a baseline folder has one edit per image
    assert pairings["other"].summary()["missing"] == 2  # images 1 and 2, counted


def write_png(path, size=SIZE):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (120, 90, 60)).save(path)


@pytest.fixture
def baseline(tmp_path):
    """A SemanticStyleGAN-style folder: hair edits of test images 6-8 at 2x size, no image 9, an extra image
    0 (not in the test split), a flat-layout nose edit, reconstructions, and a timing file."""
    folder = tmp_path / "ssg"
    for stem in ("6", "7", "8", "0"):
        write_png(folder / "hair" / f"{stem}.png", size=2 * SIZE)
    write_png(folder / "9_nose.jpg")
    write_png(folder / "recon" / "6.png")
    (folder / "timing.json").write_text('{"seconds_per_edit": [0.5, 0.7, 0.6]}')
    return folder


def overrides(tmp_path, checkpoints, *extra):
    smn, smpn = checkpoints
    return [
        f"ckpt.smn={smn}",
        f"ckpt.smpn={smpn}",
        "device=cpu",
        f"data.root={tmp_path / 'faces'}",
        "data.synthetic.n=10",
        "data.val_size=2",
        "data.test_size=4",
        "data.batch_size=2",
        "data.num_workers=0",
        f"+metrics.fid.feature_extractor._target_={EXTRACTOR}",
        "metrics.lpips.random_backbone=true",
        "timing.images=1",
        "timing.warmup=0",
        "rois=[hair,nose]",
        "seeds=[0,1]",
        "metrics.diversity.seeds=2",
        "structure_swap.rois=[hair]",  # scored by tests/test_eval_structure_swap.py; here it only runs along
        "structure_swap.designs=[smpn]",
        *extra,
    ]


def evaluate_config(tmp_path, checkpoints, *extra):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "evaluate", overrides=overrides(tmp_path, checkpoints, f"paths.output_dir={tmp_path / 'out'}", *extra)
        )


def test_without_region_masks_l2sae_is_scored_over_its_own_matte(checkpoints, lpips_model, tmp_path, monkeypatch):
    from l2sae.evaluation.baselines import Pairing, scan_baseline

    editor = L2SAEEditor.from_checkpoints(*checkpoints, matting=AlphaMatting(kernel_size=9), window=False)
    left_half_masks(monkeypatch, editor)
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6)) * 2 - 1
    write_png(tmp_path / "other" / "hair" / "0.png")
    pairings = {"other": Pairing(scan_baseline(tmp_path / "other", ["hair"], "other", key="baselines.other.dir"))}
    plan = hair_plan_with_baseline(tmp_path / "other", global_edit=True, identity=False)
    scores = EditScores([OURS, GLOBAL_EDIT, "other"], plan.rois, None, lpips_model)
    batch = {"image": images, "path": ["x/0.png", "x/1.png"]}  # an image folder's batch: no roi_masks
    score_batch(editor, scores, pairings, plan, batch, roi_index=[])
    rows = {(row["method"], row["region"]): row for row in scores.rows()}
    ours, global_edit, other = rows[(OURS, "hair")], rows[(GLOBAL_EDIT, "hair")], rows[("other", "hair")]
    assert ours["psnr_outside"] == ours["psnr_band"] == math.inf and ours["leakage_outside"] == 0.0  # exact compositing
    assert global_edit["psnr_outside"] < 40 and global_edit["preservation_pairs"] == 2  # the SMN changes everything
    assert ours["mask_iou"] is None and ours["diversity"] > 0 and ours["swap_pairs"] == 2
    assert other["lpips_pairs"] == 1 and other["preservation_pairs"] == 0 and other["psnr_outside"] is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("seeds=[]", "seeds: expected an integer or a non-empty list of integers, got \\[\\]"),
        ("seeds=null", "seeds: expected an integer or a non-empty list of integers, got None"),
        ("seeds=abc", "seeds: expected an integer or a non-empty list of integers, got 'abc'"),
        ("rois=null", "rois: expected a region name or a list of them, got None"),
        ("strength=inf", "strength: expected a finite number"),
        ("metrics.fid.enabled=maybe", "metrics.fid.enabled: expected auto, true or false"),
        ("metrics.lpips.enabled=1", "metrics.lpips.enabled: expected auto, true or false"),
        ("timing.images=-1", "timing.images: expected an integer >= 0"),
        ("device=tpu", "device: expected auto, cpu or cuda"),
        ("+baselines.l2sae.dir=/x", "baselines.l2sae: the name is taken"),
        ("metrics.diversity.seeds=1", "metrics.diversity.seeds: diversity compares edits of 2 or more seeds"),
        ("metrics.preservation.band_px=-1", "metrics.preservation.band_px: expected an integer >= 0"),
        ("metrics.identity.enabled=maybe", "metrics.identity.enabled: expected auto, true or false"),
        ("metrics.kid.subset_size=1", "metrics.kid.subset_size: expected an integer >= 2"),
    ],
)
def test_bad_settings_fail_before_any_work_naming_the_key(tmp_path, checkpoints, override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(evaluate_config(tmp_path, checkpoints, override))


def test_missing_inputs_and_bad_editor_settings_fail_before_any_output(tmp_path, checkpoints):
    from l2sae.evaluation.run import run

    with pytest.raises(FileNotFoundError, match="ckpt.smn: checkpoint .*nope.pt not found; train"):
        run(evaluate_config(tmp_path, checkpoints, f"ckpt.smn={tmp_path / 'nope.pt'}"))
    with pytest.raises(ConfigError, match="rois: unknown region 'beard'; choose from hair, skin"):
        run(evaluate_config(tmp_path, checkpoints, "rois=[hair,beard]"))  # the regions of the editor's slicing
    with pytest.raises(ConfigError, match=r"rois: region listed twice in \['hair', 'hair'\]"):
        run(evaluate_config(tmp_path, checkpoints, "rois=[hair,hair]"))
    with pytest.raises(ConfigError, match="baselines.semanticstylegan.dir=.*no such folder"):
        run(evaluate_config(tmp_path, checkpoints, f"baselines.semanticstylegan.dir={tmp_path / 'nowhere'}"))
    with pytest.raises(ConfigError, match="editor.window_max_fraction: expected a number in"):
        run(evaluate_config(tmp_path, checkpoints, "editor.window_max_fraction=2"))
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_a_whole_evaluation_with_a_baseline_folder(tmp_path, checkpoints, baseline, capsys):
    from l2sae.evaluation.run import run

    metrics = run(evaluate_config(tmp_path, checkpoints, f"baselines.semanticstylegan.dir={baseline}"))
    out = tmp_path / "out"
    report = json.loads((out / "evaluation.json").read_text())
    rows = {(row["method"], row["region"]): row for row in report["rows"]}
    assert list(rows) == [(m, r) for m in ("l2sae", "sae_global", "semanticstylegan") for r in ("hair", "nose", "all")]
    ours = rows[("l2sae", "all")]
    assert ours["fid_images"] == ours["lpips_pairs"] == ours["leakage_pairs"] == 4 * 2 * 2  # images x regions x seeds
    assert ours["mask_iou_images"] == 4 and ours["time_samples"] == 2  # 1 timed image x 2 regions
    global_all, global_hair = rows[("sae_global", "all")], rows[("sae_global", "hair")]
    assert global_all["fid_images"] == global_hair["fid_images"] == 4 * 2  # the same for every region: counted once
    assert (global_all["fid"], global_all["kid"]) == (global_hair["fid"], global_hair["kid"])
    assert global_all["lpips_pairs"] == 16  # per (image, region) pair, as ours
    assert rows[("l2sae", "hair")]["time_samples"] == 1 and rows[("l2sae", "hair")]["time_median_s"] > 0
    assert ours["kid"] is not None and ours["kid_subset_size"] == 4  # KID's subsets: the 4 real images
    assert ours["preservation_pairs"] == 16 and 0 < ours["psnr_band"] < math.inf and 0 < ours["ssim_outside"] < 1
    assert ours["diversity_images"] == 8 and ours["diversity_seeds"] == 2 and ours["diversity"] > 0
    assert ours["swap_pairs"] == 8 and ours["swap_lpips"] >= 0
    # synthetic 64 px faces: dlib's detector finds none; the pairs are counted, not scored
    assert ours["identity_pairs"] + ours["identity_missed_inputs"] + ours["identity_missed_edits"] == 16
    ssg_hair, ssg_nose = rows[("semanticstylegan", "hair")], rows[("semanticstylegan", "nose")]
    assert ssg_hair["lpips_pairs"] == 3 and ssg_nose["lpips_pairs"] == 1 and ssg_nose["fid_images"] == 1
    assert ssg_hair["preservation_pairs"] == 3 and ssg_hair["diversity"] is None and ssg_hair["swap_pairs"] is None
    assert ssg_nose["fid"] is None  # one image is too few for FID
    assert rows[("semanticstylegan", "all")]["recon_pairs"] == 1
    assert rows[("semanticstylegan", "all")]["time_median_s"] == pytest.approx(0.6)
    files = report["baselines"]["semanticstylegan"]
    assert files["missing"] == 4 and files["missing_examples"] == ["nose/6", "nose/7", "hair/9", "nose/8"]
    assert (files["extra"], files["extra_examples"]) == (1, ["hair/0.png"])
    assert files["missing_recons"] == 3
    assert metrics["l2sae/all/fid_images"] == 16 and metrics["semanticstylegan/hair/lpips_pairs"] == 3
    printed = capsys.readouterr().out
    assert "## Table 1: all regions (hair, nose)" in printed and "| semanticstylegan |" in printed
    assert (out / "evaluation.md").read_text() in printed
    assert (out / "csv").is_dir()  # the CSV logger's metrics
    assert report["settings"]["LPIPS"] == "lpips alex with a random backbone (tests only: not a perceptual distance)"
    assert report["notes"] == {}
    assert len((out / "evaluation.csv").read_text().splitlines()) == 1 + 9
    settings = report["settings"]
    assert settings["split"] == "the test split of the index split scheme: 4 images"
    assert settings["resolution"] == "64 px (the networks': 64 px)"
    assert settings["baseline files"] == "semanticstylegan: 4 png, 1 jpg"
    assert (
        settings["L2SAE masks"]
        == "hair, skin, nose, eyes, lips_mouth: full-resolution region decodes (editor.masks=auto)"
    )
    assert "cpu, " in settings["timing"] and "(precision=auto)" in settings["timing"] and "flags:" in settings["timing"]
    assert "| Method | FID ↓ | LPIPS ↓ | Time per edit (s) ↓ | KID ↓ | PSNR out (dB) ↑ |" in printed


CLI_SMALL = ("rois=[hair]", "seeds=[0]", "global_edit=false", "timing.images=0")


@pytest.mark.slow
def test_evaluate_py_runs_from_the_command_line(tmp_path, checkpoints):
    out = tmp_path / "cli"
    arguments = overrides(tmp_path, checkpoints, *CLI_SMALL, f"hydra.run.dir={out}")
    result = run_script(ROOT / "evaluate.py", arguments, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Method | FID ↓ | LPIPS ↓ | Time per edit (s) ↓ |" in result.stdout
    assert {"evaluation.md", "evaluation.csv", "evaluation.json"} <= {path.name for path in out.iterdir()}


NO_WEIGHTS = ("metrics.fid.feature_extractor=null", "metrics.lpips.random_backbone=false")  # Inception, AlexNet
SMALL = (*CLI_SMALL, "timing.images=1")


def weights_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "l2sae.evaluation.weights"]


@pytest.mark.usefixtures("offline_empty_cache")
@pytest.mark.parametrize("enabled", ["auto", "false"])
def test_without_weights_fid_and_lpips_read_n_a_with_a_note_and_the_rest_is_scored(
    tmp_path, checkpoints, caplog, capsys, enabled
):
    from l2sae.evaluation.run import run

    switches = (f"metrics.fid.enabled={enabled}", f"metrics.lpips.enabled={enabled}")
    with caplog.at_level(logging.WARNING):
        metrics = run(evaluate_config(tmp_path, checkpoints, *SMALL, *NO_WEIGHTS, *switches))
    out = tmp_path / "out"
    report = json.loads((out / "evaluation.json").read_text())
    files = {"fid": INCEPTION_WEIGHTS, "lpips": BACKBONE_WEIGHTS["alex"]}
    if enabled == "auto":
        fid_warning, lpips_warning = weights_warnings(caplog)  # one warning per metric
        for name, warning in (("fid", fid_warning), ("lpips", lpips_warning)):
            folder = hub_checkpoint_path(files[name]).parent
            note = f"{name.upper()} skipped: {files[name]} not found in {folder} and it could not be downloaded."
            assert report["notes"][name] == note
            assert note in warning and f"metrics.{name}.enabled=true makes this an error" in warning
    else:
        assert weights_warnings(caplog) == []  # asked for: no warning
        assert report["notes"] == {
            name: f"{name.upper()} not computed (metrics.{name}.enabled=false)." for name in files
        }
    assert report["settings"]["FID / KID"] == report["settings"]["LPIPS"] == "not computed (see notes)"
    (ours,) = (row for row in report["rows"] if row["region"] == "all")
    assert ours["fid"] is ours["lpips"] is ours["fid_images"] is ours["lpips_pairs"] is None
    assert ours["mask_iou"] is not None and ours["mask_iou_images"] == 4
    assert ours["leakage_inside"] > 0 and ours["leakage_pairs"] == 4
    assert ours["time_median_s"] > 0 and ours["time_samples"] == 1
    assert ours["kid"] is ours["lpips_outside"] is ours["diversity"] is ours["swap_lpips"] is None
    assert ours["psnr_outside"] > 0 and ours["ssim_band"] > 0 and ours["preservation_pairs"] == 4  # need no weights
    assert "l2sae/all/mask_iou" in metrics and "l2sae/all/fid" not in metrics
    markdown = (out / "evaluation.md").read_text()
    assert "| l2sae | n/a | n/a | " in markdown and "## Notes" in markdown
    assert markdown in capsys.readouterr().out  # printed, notes included
    with (out / "evaluation.csv").open() as file:
        (hair, everything) = csv.DictReader(file)
    assert hair["fid"] == hair["lpips"] == everything["lpips_pairs"] == "n/a"
    assert float(hair["leakage_inside"]) > 0 and float(everything["time_median_s"]) > 0


@pytest.mark.usefixtures("offline_empty_cache")
@pytest.mark.parametrize("metric, weights_file", [("fid", INCEPTION_WEIGHTS), ("lpips", BACKBONE_WEIGHTS["alex"])])
def test_without_weights_enabled_true_fails_before_any_output(tmp_path, checkpoints, metric, weights_file):
    from l2sae.evaluation.run import run

    others_off = [f"metrics.{name}.enabled=false" for name in ("fid", "lpips") if name != metric]
    cfg = evaluate_config(tmp_path, checkpoints, *NO_WEIGHTS, f"metrics.{metric}.enabled=true", *others_off)
    with pytest.raises(MissingWeightsError, match=f"{weights_file} .*Copy {weights_file} into"):
        run(cfg)
    assert not (tmp_path / "out").exists()
