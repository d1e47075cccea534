"""Evaluation: FID, LPIPS, time per edit, mask IoU and edit leakage, for L2SAE and baseline folders.

The metric classes are plain Python over tensors (images B x 3 x H x W in [-1, 1]); they need no
Lightning or Hydra. ``run(cfg)`` is ``evaluate.py``'s work (conf/evaluate.yaml).
"""

from l2sae.evaluation.baselines import BaselineFolder, Pairing, scan_baseline
from l2sae.evaluation.fid import GroupedFID, inception_features
from l2sae.evaluation.leakage import EditLeakage
from l2sae.evaluation.lpips_metric import build_lpips, lpips_distance
from l2sae.evaluation.masks import RegionIoU
from l2sae.evaluation.report import write_report
from l2sae.evaluation.run import run
from l2sae.evaluation.scoring import EditScores
from l2sae.evaluation.timing import TimingStats, measure_seconds
from l2sae.evaluation.weights import MissingWeightsError

__all__ = [
    "BaselineFolder",
    "EditLeakage",
    "EditScores",
    "GroupedFID",
    "MissingWeightsError",
    "Pairing",
    "RegionIoU",
    "TimingStats",
    "build_lpips",
    "inception_features",
    "lpips_distance",
    "measure_seconds",
    "run",
    "scan_baseline",
    "write_report",
]
