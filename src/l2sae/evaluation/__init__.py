"""Evaluation: FID, LPIPS, time per edit, mask IoU, edit leakage, KID, preservation outside the region,
identity, diversity, for L2SAE and baseline folders.

The metric classes are plain Python over tensors (images B x 3 x H x W in [-1, 1]); they need no
Lightning or Hydra. ``l2sae.evaluation.run.run(cfg)`` is ``evaluate.py``'s work (conf/evaluate.yaml).
"""

from l2sae.evaluation.baselines import BaselineFolder, Pairing, scan_baseline
from l2sae.evaluation.fid import GroupedFID, inception_features
from l2sae.evaluation.identity import IdentityScores
from l2sae.evaluation.leakage import EditLeakage
from l2sae.evaluation.lpips_metric import build_lpips, lpips_distance
from l2sae.evaluation.masked import MaskedMean, Preservation
from l2sae.evaluation.masks import RegionIoU
from l2sae.evaluation.report import write_report
from l2sae.evaluation.scoring import EditScores
from l2sae.evaluation.timing import TimingStats, measure_seconds
from l2sae.evaluation.weights import MissingWeightsError

__all__ = [
    "BaselineFolder",
    "EditLeakage",
    "EditScores",
    "GroupedFID",
    "IdentityScores",
    "MaskedMean",
    "MissingWeightsError",
    "Pairing",
    "Preservation",
    "RegionIoU",
    "TimingStats",
    "build_lpips",
    "inception_features",
    "lpips_distance",
    "measure_seconds",
    "scan_baseline",
    "write_report",
]
