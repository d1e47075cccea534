"""The evaluation's SSIM map (l2sae.evaluation.masked.ssim_map) against torchmetrics' float64 map, same inputs.

    python bench/ssim_map.py                       # 8 image pairs at 64, 256 and 512 px
    python bench/ssim_map.py --sizes 256 --runs 5

Both compute the same float64 map (Gaussian window 11 x 11, sigma 1.5, reflection padding); ours filters
with two matrix products, torchmetrics with a grouped 2-d convolution. Prints the median seconds per call
and the largest difference between the two maps; results go to ``bench/results/ssim_map-<time>.json``.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from benchlib import format_table, machine_info, machine_line, write_results
from torchmetrics.functional.image import structural_similarity_index_measure

from l2sae.evaluation.masked import ssim_map, to_unit
from l2sae.evaluation.timing import TimingStats, measure_seconds


def torchmetrics_map(images: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """torchmetrics' float64 SSIM map of two batches in [-1, 1], averaged over the colour channels."""
    _, full = structural_similarity_index_measure(
        to_unit(images).double(), to_unit(others).double(), sigma=1.5, data_range=1.0, return_full_image=True
    )
    return full.mean(dim=1, keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--batch", type=int, default=8, help="image pairs per call (default 8)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_info(torch.device("cpu"))
    print(machine_line(machine), flush=True)
    rows = []
    for size in args.sizes:
        generator = torch.Generator().manual_seed(size)
        images = torch.rand(args.batch, 3, size, size, generator=generator) * 2 - 1
        others = (images + 0.3 * torch.randn(images.shape, generator=generator)).clamp(-1, 1)
        difference = (ssim_map(images, others) - torchmetrics_map(images, others)).abs().max().item()
        for name, function in (("l2sae", ssim_map), ("torchmetrics", torchmetrics_map)):
            call = partial(function, images, others)
            stats = TimingStats.from_seconds(measure_seconds([call] * args.runs, warmup=1))
            rows.append(
                {
                    "size": size,
                    "implementation": name,
                    "median_s": stats.median_s,
                    "max_difference": difference,
                }
            )
    columns = [
        ("size", "px"),
        ("implementation", "SSIM map"),
        ("median_s", "median s"),
        ("max_difference", "max |difference|"),
    ]
    print(format_table(rows, columns))
    print("results:", write_results("ssim_map", {"machine": machine, "batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
