"""Time and peak memory of one SMN and one SMPN training step (the modules' own ``training_step``).

    python bench/train_step.py                               # quickstart, tiny, ffhq256; batch 2; fp32, bf16-mixed
    python bench/train_step.py --presets tiny --runs 2       # smoke run (seconds)

Each case (network x preset x precision) runs in its own Python process: the modules are built from
``conf/train.yaml`` with Hydra exactly as ``train.py`` builds them (``model.smn.module`` /
``model.smpn.module``, default loss and slicing, random weights), then a ``pytorch_lightning.Trainer``
runs ``--warmup + --runs`` batches of random images and masks and a callback times each batch
(``on_train_batch_start`` to ``on_train_batch_end``: the whole manual-optimisation step); the first,
untimed batch is counted by ``torch.utils.flop_counter`` (forward and backward). Peak memory is
the process's peak resident set size (``ru_maxrss``) minus its resident size just before ``fit``, so
it counts activations, gradients and Adam state, not the model and the libraries. An SMN step with
discriminators runs the lazy R1 regulariser every ``r1_every`` (16) steps; the counter is set so
that the last batch runs it, and that batch is reported apart (``r1_step_s``).
Prints a table and writes ``bench/results/train_step-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import format_table, machine_info, machine_line, write_results

REPO_ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}
NETWORKS = ("smn", "smpn")
PRESETS = ("quickstart", "tiny", "ffhq256")  # quickstart: the tiny preset as experiment=quickstart changes it

TABLE_COLUMNS = (
    ("network", "network"),
    ("preset", "preset"),
    ("precision", "precision"),
    ("median_s", "median s"),
    ("min_s", "min s"),
    ("max_s", "max s"),
    ("r1_step_s", "R1 step s"),
    ("gflop", "GFLOP"),
    ("gflop_per_s", "GFLOP/s"),
    ("peak_step_mib", "step peak MiB"),
    ("peak_rss_mib", "process peak MiB"),
    ("peak_cuda_mib", "GPU peak MiB"),
)


def current_rss_mib() -> float:
    """Resident set size now (Linux /proc/self/statm), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_module(network: str, preset: str, workdir: Path):
    """The LightningModule ``train.py`` would build for ``network`` with backbone ``preset`` (a plain preset
    without the quick start's changes, or ``quickstart``: the quick start's own backbone)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
    from l2sae.regions import ROI_NAMES

    overrides = [] if preset == "quickstart" else ["~experiment", f"backbone={preset}"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"model={network}"])
    with open_dict(cfg):  # the steps are counted by batches here; a schedule does not change a step's cost
        cfg.model[network].module.lr_decay = None
    if network == "smpn":
        config = SAEConfig.from_backbone(cfg.backbone)
        init = workdir / "init.pt"  # the SAE an SMPN starts from: a random one of the backbone
        save_sae(SwappingAutoencoder(config, with_discriminators=False), init)
        with open_dict(cfg):
            module = cfg.model.smpn.module
            module.init_checkpoint, module.roi_names, module.image_size = str(init), list(ROI_NAMES), config.crop_size
    return instantiate(cfg.model[network].module)


def run_case(
    network: str, preset: str, precision: str, batch: int, warmup: int, runs: int, device: str = "cpu"
) -> dict:
    """Build the module, fit ``warmup + runs`` (+1 lazy-R1) batches, return timings and memory."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from l2sae.evaluation.timing import TimingStats
    from l2sae.regions import ROI_NAMES

    on_gpu = device == "cuda"

    class StepTimer(pl.Callback):
        """Wall time of every batch; the FLOPs of the first (untimed warm-up) batch."""

        def __init__(self):
            self.seconds: list[float] = []
            self.flop_counter = FlopCounterMode(display=False)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.flop_counter.__enter__()
            if on_gpu:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if on_gpu:
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)
            if batch_idx == 0:
                self.flop_counter.__exit__(None, None, None)

    with tempfile.TemporaryDirectory() as workdir:
        module = build_module(network, preset, Path(workdir))
    size = module.sae.config.crop_size
    with_r1 = network == "smn" and module.weights.applies_r1
    warmup = max(warmup, 1)  # the first batch is counted (FLOPs), never timed
    steps = warmup + runs + int(with_r1)
    if with_r1:  # the R1 step runs when the counter reaches a multiple of r1_every: make it the last batch
        module.sae.num_discriminator_iters.fill_((module.r1_every - steps) % module.r1_every)
    generator = torch.Generator().manual_seed(0)
    samples = [
        {
            "image": torch.rand(3, size, size, generator=generator) * 2 - 1,
            "roi_masks": (torch.rand(len(ROI_NAMES), size, size, generator=generator) > 0.7).float(),
        }
        for _ in range(batch * steps)
    ]
    loader = torch.utils.data.DataLoader(samples, batch_size=batch, shuffle=False, drop_last=True)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="gpu" if on_gpu else "cpu",
        devices=1,
        precision=PRECISIONS[precision],
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    rss_before = current_rss_mib()
    trainer.fit(module, train_dataloaders=loader)
    timed = timer.seconds[warmup : warmup + runs]
    stats = TimingStats.from_seconds(timed)
    return {
        "network": network,
        "preset": preset,
        "image_size": size,
        "batch": batch,
        "precision": PRECISIONS[precision],
        **stats.to_dict(),
        "seconds": timed,
        "r1_step_s": timer.seconds[-1] if with_r1 else None,
        "gflop": timer.flop_counter.get_total_flops() / 1e9,
        "gflop_per_s": timer.flop_counter.get_total_flops() / 1e9 / stats.median_s,
        "rss_before_fit_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "peak_step_mib": peak_rss_mib() - rss_before,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
    }


def run_in_subprocess(case: tuple[str, str, str], args: argparse.Namespace) -> dict:
    """Run one case in a fresh interpreter so that its peak RSS is its own."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "case.json"
        command = [
            sys.executable,
            __file__,
            "--case",
            *case,
            "--batch",
            str(args.batch),
            "--warmup",
            str(args.warmup),
            "--runs",
            str(args.runs),
            "--case-output",
            str(out),
            "--device",
            args.device,
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"case {' '.join(case)} failed:\n{completed.stderr[-4000:]}")
        return json.loads(out.read_text())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--precision", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batch", type=int, default=2, help="images per step (even; default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed steps per case (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first, at least 1 (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the steps run (default cpu)")
    parser.add_argument("--case", nargs=3, metavar=("NETWORK", "PRESET", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--case-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even and >= 2 (the SAE swaps codes within pairs)")
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    if args.case:  # child process: one case
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        result = run_case(*args.case, batch=args.batch, warmup=args.warmup, runs=args.runs, device=args.device)
        args.case_output.write_text(json.dumps(result))
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_info(torch.device(args.device))
    print(machine_line(machine), flush=True)
    rows = []
    for preset in args.presets:
        for network in args.networks:
            for precision in args.precision:
                row = run_in_subprocess((network, preset, precision), args)
                rows.append(row)
                print(
                    f"  {network} {preset} {row['precision']}: median {row['median_s']:.3f} s, "
                    f"step peak {row['peak_step_mib']:.0f} MiB",
                    flush=True,
                )
    print(f"\ntraining step, batch {args.batch}, device {args.device}")
    print(machine_line(machine))
    print(format_table(rows, TABLE_COLUMNS))
    machine["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    results = {
        "benchmark": "train_step",
        "machine": machine,
        "settings": vars(args) | {"case_output": None},
        "rows": rows,
    }
    print(f"results: {write_results('train_step', results)}")


if __name__ == "__main__":
    main()
