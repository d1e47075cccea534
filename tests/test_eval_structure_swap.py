"""Structure-swap scores on hand-made cases and on drawn ground truth."""

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_networks import TINY_SLICING

from l2sae.data.synthswap import draw_swaps
from l2sae.editing import AlphaMatting, L2SAEEditor
from l2sae.editing.swap_designs import STRUCTURE_SWAP_DESIGNS
from l2sae.evaluation.lpips_metric import build_lpips
from l2sae.evaluation.structure_swap import (
    UNCHANGED,
    StructureSwapPlan,
    StructureSwapScores,
    SwapTruth,
    check_settings,
    score_designs,
)
from l2sae.nn import SAEConfig, SwappingAutoencoder
from l2sae.utils.errors import ConfigError


def _hand_made() -> SwapTruth:
    """4 x 4 grey images; the region's union is the top half, the truth changes nothing in the bottom half."""
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1.0
    inputs = torch.zeros(1, 3, 4, 4)
    truths = inputs + 0.5 * top
    return SwapTruth(inputs, inputs, truths, union=top, unchanged=1 - top, truth_masks=top)


def test_hand_made_scores():
    truth = _hand_made()
    scores = StructureSwapScores()
    scores.add("perfect", "nose", truth.truths, truth, predicted=truth.truth_masks)
    scores.add(UNCHANGED, "nose", truth.inputs, truth, predicted=torch.zeros_like(truth.truth_masks))
    off = truth.truths + 0.2 * truth.union - 0.2 * truth.unchanged  # 0.1 off on the [0, 1] scale everywhere
    half = truth.truth_masks.clone()
    half[..., :1, :] = 0.0
    scores.add("off", "nose", off, truth, predicted=half)
    perfect, unchanged, off_row = scores.rows()[:3]
    assert perfect == {
        "design": "perfect", "region": "nose", "psnr": math.inf, "lpips": None, "iou": 1.0,
        "psnr_outside": math.inf, "swaps": 1,
    }  # fmt: skip
    # the unchanged input: 0.25 off on the [0, 1] scale inside, nothing of the region found
    assert unchanged["psnr"] == pytest.approx(-10 * math.log10(0.25**2)) and unchanged["iou"] == 0.0
    assert unchanged["psnr_outside"] == math.inf
    assert off_row["psnr"] == pytest.approx(20.0) and off_row["psnr_outside"] == pytest.approx(20.0)
    assert off_row["iou"] == pytest.approx(0.5)


def test_drawn_truth_perfect_swap_beats_the_unchanged_input():
    cases = draw_swaps(seed=0, size=64, pairs=[(0, 1), (2, 3)], rois=["nose"])
    truth = SwapTruth.of(cases)
    assert truth.inputs.shape == (2, 3, 64, 64) and truth.union.shape == (2, 1, 64, 64)
    assert torch.equal(truth.inputs * truth.unchanged, truth.truths * truth.unchanged)
    scores = StructureSwapScores(build_lpips(random_backbone=True))
    scores.add("perfect", "nose", truth.truths, truth, truth.truth_masks)
    scores.add(UNCHANGED, "nose", truth.inputs, truth, truth.union - truth.truth_masks)
    perfect, unchanged = scores.rows()[:2]
    assert perfect["psnr"] == math.inf and perfect["iou"] == 1.0 and perfect["psnr_outside"] == math.inf
    assert perfect["lpips"] == 0.0
    assert math.isfinite(unchanged["psnr"]) and unchanged["iou"] < 0.5 and unchanged["lpips"] > 0


def test_score_designs_scores_every_design_and_the_unchanged_input():
    torch.manual_seed(0)
    smn, smpn = (SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False) for _ in range(2))
    editor = L2SAEEditor(smn, smpn, TINY_SLICING, matting=AlphaMatting(kernel_size=5), precision="32", image_size=64)
    cases = draw_swaps(seed=0, size=64, pairs=[(0, 1)], rois=["nose", "eyes"])
    rows = score_designs(editor, cases, list(STRUCTURE_SWAP_DESIGNS), batch_size=1)
    assert [(row["design"], row["region"]) for row in rows] == [
        (design, roi) for roi in ("nose", "eyes") for design in (UNCHANGED, *STRUCTURE_SWAP_DESIGNS)
    ] + [(design, "mean") for design in (UNCHANGED, *STRUCTURE_SWAP_DESIGNS)]
    for row in rows:
        assert row["swaps"] == (2 if row["region"] == "mean" else 1) and 0 <= row["iou"] <= 1 and row["lpips"] is None
        assert math.isfinite(row["psnr"]) and (row["psnr_outside"] == math.inf) == (row["design"] == UNCHANGED)


SETTINGS = {"enabled": "auto", "pairs": 2, "rois": ["nose"], "designs": ["smpn"], "batch_size": 4}
SYNTHETIC = {"n": 10, "size": 64, "seed": 0}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"enabled": "yes"}, "structure_swap.enabled: expected auto, true or false"),
        ({"pairs": 0}, "structure_swap.pairs: expected a positive integer"),
        ({"batch_size": True}, "structure_swap.batch_size: expected a positive integer"),
        ({"rois": ["skin"]}, "structure_swap.rois: no structure-swap ground truth for 'skin'"),
        ({"designs": ["best"]}, "structure_swap.designs: expected one of smn_sliced, .*, got 'best'"),
        ({"designs": []}, "structure_swap: list at least one region"),
    ],
)
def test_bad_settings_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        check_settings({**SETTINGS, **change}, SYNTHETIC)


def test_swaps_are_scored_only_where_ground_truth_can_be_drawn():
    assert check_settings(SETTINGS, SYNTHETIC) == StructureSwapPlan(2, ("nose",), ("smpn",), 4)
    assert check_settings(SETTINGS, None) is None and check_settings({**SETTINGS, "enabled": False}, SYNTHETIC) is None
    with pytest.raises(ConfigError, match="structure_swap.enabled: structure swaps need ground truth from synthetic"):
        check_settings({**SETTINGS, "enabled": True}, None)


@pytest.mark.slow
def test_evaluate_scores_structure_swaps_on_synthetic_data(tmp_path, tiny_checkpoints, capsys):
    from hydra import compose, initialize_config_dir

    from l2sae.evaluation.run import run

    smn, smpn = tiny_checkpoints
    overrides = [
        f"ckpt.smn={smn}",
        f"ckpt.smpn={smpn}",
        "device=cpu",
        "precision=32",
        f"data.root={tmp_path / 'faces'}",
        "data.synthetic.n=10",
        "data.val_size=2",
        "data.test_size=5",
        "data.num_workers=0",
        "metrics.fid.enabled=false",
        "metrics.lpips.random_backbone=true",
        "metrics.identity.enabled=false",  # the region edits' metrics are tests/test_eval_run.py's
        "metrics.diversity.seeds=0",
        "metrics.swap_style.enabled=false",
        "timing.images=0",
        "rois=[nose]",
        "global_edit=false",
        "structure_swap.rois=[nose,hair]",
        "structure_swap.designs=[smn_sliced,smpn_swapped_matte]",
        f"paths.output_dir={tmp_path / 'out'}",
    ]
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        metrics = run(compose("evaluate", overrides=overrides))
    report = json.loads((tmp_path / "out" / "structure_swap.json").read_text())
    rows = {(row["design"], row["region"]): row for row in report["rows"]}
    designs = (UNCHANGED, "smn_sliced", "smpn_swapped_matte")
    assert list(rows) == [(design, region) for region in ("nose", "hair") for design in designs] + [
        (design, "mean") for design in designs
    ]
    assert (
        rows[UNCHANGED, "nose"]["swaps"] == 2 and rows["smpn_swapped_matte", "mean"]["swaps"] == 4
    )  # 5 faces: 2 pairs
    nose, hair = rows["smn_sliced", "nose"], rows["smn_sliced", "hair"]
    assert rows["smn_sliced", "mean"]["iou"] == pytest.approx((nose["iou"] + hair["iou"]) / 2)
    assert rows[UNCHANGED, "hair"]["psnr_outside"] == "inf" and rows["smn_sliced", "hair"]["lpips"] > 0
    assert metrics["structure_swap/smpn_swapped_matte/nose/iou"] == rows["smpn_swapped_matte", "nose"]["iou"]
    assert "| smn_sliced | nose |" in capsys.readouterr().out
    assert metrics["structure_swap/input/mean/psnr_outside"] == math.inf
