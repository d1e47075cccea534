"""Scores by method and region, and the report files (Markdown Table 1 + per region, CSV, JSON)."""

import csv
import json
import math

import pytest
import torch
from eval_helpers import ChannelStatistics, random_images

from l2sae.evaluation.lpips_metric import build_lpips
from l2sae.evaluation.report import COLUMNS, log_tables, write_report
from l2sae.evaluation.scoring import EditScores

ROIS = ("hair", "eyes")


@pytest.fixture(scope="module")
def lpips_model():
    return build_lpips("alex", random_backbone=True)


def scored(fid_extractor, lpips_model) -> EditScores:
    """Two methods' edits of two regions; ``None`` for either network leaves that metric out."""
    scores = EditScores(["ours", "other"], ROIS, fid_extractor, lpips_model)
    inputs = random_images(4, size=32)
    masks = torch.zeros(4, 2, 32, 32)
    masks[:, 0, :16] = 1  # hair: top half
    masks[:, 1, 20:24] = 1  # eyes: a band
    scores.add_real(inputs)
    for index, roi in enumerate(ROIS):
        local = inputs.clone()
        local[:, :, masks[0, index] > 0] = 0.5  # ours changes only the region
        scores.add_edits("ours", roi, inputs, local, masks[:, index : index + 1])
        # the other method returns (flat-coloured) inputs unchanged, at twice the size, for half the images
        flat = inputs[:2].mean(dim=(2, 3), keepdim=True).expand(-1, -1, 32, 32)
        scores.add_edits("other", roi, flat, flat.repeat(1, 1, 2, 2), masks[:2, index : index + 1])
    scores.add_masks("ours", masks, masks)
    scores.add_reconstructions("other", inputs[:2], inputs[:2])
    scores.set_timing("ours", "hair", [0.1, 0.3, 0.2])
    return scores


def test_rows_hold_every_metric_with_its_count(lpips_model):
    rows = {(row["method"], row["region"]): row for row in scored(ChannelStatistics(), lpips_model).rows()}
    assert list(rows) == [(m, r) for m in ("ours", "other") for r in ("hair", "eyes", "all")]
    hair = rows[("ours", "hair")]
    assert hair["leakage_outside"] == 0.0 and hair["leakage_inside"] > 0 and hair["leakage_ratio"] == 0.0
    assert hair["lpips"] > 0 and hair["lpips_pairs"] == 4 and hair["leakage_pairs"] == 4
    assert hair["fid_images"] == 4 and hair["fid"] > 0
    assert hair["mask_iou"] == 1.0 and hair["mask_iou_images"] == 4
    assert hair["time_median_s"] == pytest.approx(0.2) and hair["time_samples"] == 3
    assert rows[("ours", "all")]["fid_images"] == 8 and rows[("ours", "all")]["mask_iou"] == 1.0
    assert rows[("ours", "eyes")]["time_median_s"] is None
    other = rows[("other", "all")]
    # an unchanged image, resized to the evaluation size, scores 0
    assert other["lpips"] == pytest.approx(0, abs=1e-6) and other["leakage_outside"] == pytest.approx(0, abs=1e-6)
    assert other["lpips_pairs"] == 4 and other["fid_images"] == 4
    assert other["recon_lpips"] == pytest.approx(0, abs=1e-6) and other["recon_pairs"] == 2
    assert other["mask_iou"] is None and rows[("ours", "all")]["recon_lpips"] is None


def test_report_files_markdown_csv_json(lpips_model, tmp_path):
    rows = scored(ChannelStatistics(), lpips_model).rows()
    settings = {"images": 4, "fid antialias": True}
    baselines = {
        "other": {
            "folder": "/x",
            "timing_file": None,
            "missing": 7,
            "missing_examples": ["hair/1", "hair/2"],
            "missing_recons": 0,
            "missing_recons_examples": [],
            "extra": 1,
            "extra_examples": ["9_hair.png"],
            "ignored": 0,
            "ignored_examples": [],
        }
    }
    paths = write_report(tmp_path / "run", rows, settings, baselines)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "evaluation.csv",
        "evaluation.json",
        "evaluation.md",
    ]
    markdown = paths["markdown"].read_text()
    assert "| Method | FID ↓ | LPIPS ↓ | Time per edit (s) ↓ |" in markdown
    table1 = markdown.split("## Table 1")[1].split("## hair")[0]
    assert "| ours |" in table1 and "| other |" in table1
    assert "0.2000 [0.1000–0.3000] (3)" in markdown
    assert "## eyes" in markdown and "Mask IoU ↑" in markdown
    assert "- missing: 7 (hair/1, hair/2, ...)" in markdown and "- extra: 1 (9_hair.png)" in markdown
    assert "fid antialias: True" in markdown
    with paths["csv"].open() as file:
        table = list(csv.DictReader(file))
    assert tuple(table[0]) == COLUMNS and len(table) == 6
    assert table[2]["region"] == "all" and float(table[2]["fid"]) == pytest.approx(rows[2]["fid"])
    assert table[3]["mask_iou"] == ""  # None -> empty cell
    data = json.loads(paths["json"].read_text())
    assert data["settings"] == settings and data["baselines"] == baselines
    assert data["rows"][0]["lpips"] == pytest.approx(rows[0]["lpips"])
    # beyond the paper: ours changed only the region, so nothing changed outside it (infinite PSNR)
    assert rows[0]["psnr_outside"] == math.inf and data["rows"][0]["psnr_outside"] == "inf"
    assert table[0]["psnr_outside"] == "inf" and float(table[0]["ssim_outside"]) < 1
    header = "| Method | FID ↓ | LPIPS ↓ | Time per edit (s) ↓ | KID ↓ | PSNR out (dB) ↑ | SSIM out ↑ | LPIPS out ↓ |"
    assert header in table1 and "| ∞ (8) |" in table1.split("| ours |")[1].split("\n")[0]


def test_identity_and_kid_cells_show_their_counts(tmp_path):
    row = dict.fromkeys(COLUMNS) | {"method": "m", "region": "all", "fid": 1.0, "fid_images": 9}
    row |= {"kid": 0.0123, "kid_std": 0.0045, "kid_subset_size": 9, "identity_similarity": 0.95}
    row |= {"identity_match": 0.5, "identity_pairs": 6, "identity_missed_inputs": 1, "identity_missed_edits": 2}
    markdown = write_report(tmp_path, [row], {}, {})["markdown"].read_text()
    assert "| 0.0123 ± 0.0045 (9; subsets of 9) |" in markdown
    assert "| 0.950 (6; no face: 1 inputs, 2 edits) | 0.500 |" in markdown
    skipped = write_report(tmp_path, [row], {}, {}, {"identity": "Identity not computed."})["markdown"].read_text()
    assert "| n/a | n/a |" in skipped and "0.950" not in skipped


def test_a_skipped_metric_reads_n_a_with_its_note_and_the_other_numbers_stay(tmp_path):
    rows = scored(None, None).rows()
    by_key = {(row["method"], row["region"]): row for row in rows}
    hair = by_key[("ours", "hair")]
    assert all(hair[column] is None for column in ("fid", "fid_images", "lpips", "lpips_pairs"))
    assert by_key[("other", "all")]["recon_lpips"] is None  # the reconstruction LPIPS is skipped as well
    assert hair["leakage_outside"] == 0.0 and hair["leakage_inside"] > 0 and hair["mask_iou"] == 1.0
    assert hair["time_median_s"] == pytest.approx(0.2)
    skipped = {"fid": "FID skipped: weights.pth not found in /hub.", "lpips": "LPIPS not computed (x=false)."}
    paths = write_report(tmp_path, rows, {"FID": "not computed (see notes)"}, {}, skipped)
    markdown = paths["markdown"].read_text()
    assert "## Notes\n\n- FID skipped: weights.pth not found in /hub.\n- LPIPS not computed (x=false).\n" in markdown
    table1 = markdown.split("## Table 1")[1].split("## hair")[0]
    assert "| ours | n/a | n/a | – |" in table1  # not timed over all regions: "–", not "n/a"
    hair_table = markdown.split("## hair")[1].split("## eyes")[0]
    assert "| ours | n/a | n/a | 0.0000 (4) |" in hair_table
    assert "| 1.000 (4) | 0.2000 [0.1000–0.3000] (3) |" in hair_table
    with paths["csv"].open() as file:
        table = list(csv.DictReader(file))
    for column in ("fid", "fid_images", "lpips", "lpips_pairs", "recon_lpips", "recon_pairs"):
        assert {line[column] for line in table} == {"n/a"}
    assert float(table[0]["leakage_outside"]) == 0.0 and float(table[0]["mask_iou"]) == 1.0
    assert table[3]["mask_iou"] == ""  # undefined (method "other" has no masks): empty, not "n/a"
    data = json.loads(paths["json"].read_text())
    assert data["notes"] == skipped
    assert data["rows"][0]["fid"] is None and data["rows"][0]["lpips"] is None
    assert data["rows"][0]["mask_iou"] == 1.0


def test_tables_go_to_loggers_that_have_log_table(lpips_model):
    rows = scored(ChannelStatistics(), lpips_model).rows()

    class TableLogger:
        def __init__(self):
            self.tables = {}

        def log_table(self, key, columns, data):
            self.tables[key] = (columns, data)

    logger = TableLogger()
    log_tables([logger, object()], rows)
    columns, table1 = logger.tables["evaluation/table1"]
    assert columns == list(COLUMNS) and [line[:2] for line in table1] == [["ours", "all"], ["other", "all"]]
    assert len(logger.tables["evaluation/regions"][1]) == 6


def test_json_outputs_are_valid_json_with_null_for_missing_values_and_inf_as_text(tmp_path):
    """Issue 17.8: a NaN reached evaluation.json as a bare NaN token, which is not JSON."""
    from l2sae.utils.files import atomic_write_json

    path = tmp_path / "evaluation.json"
    atomic_write_json(path, {"fid": math.nan, "rows": [1.0, math.inf, (2, -math.inf)], "note": "ok"})

    def refuse(token):
        raise AssertionError(f"invalid JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "fid": None,
        "rows": [1.0, "inf", [2, "-inf"]],
        "note": "ok",
    }
