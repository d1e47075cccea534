"""What the cheap mask head's settings buy: heads distilled with each setting from one trained SMPN, each scored
against that SMPN's full masks on the validation faces (matte IoU per region, as training logs and records it).

The SMPN is the quick start's (``tests/fixtures/quickstart_smpn.pt``, or ``--smpn FILE``: a run's smpn.pt); the
faces and the base settings (``model.smpn.module.mask_head``) are those of conf/train.yaml with ``--overrides``
(default: the quick start's, ``data/synthfaces``, drawn if missing; for another run, the overrides it was trained
with). Each variant overrides the base settings. Distillation time is the process's CPU time (all threads).

    python bench/mask_head_settings.py     # the quick start's head, a quarter-side head, longer distillations
    python bench/mask_head_settings.py --variants "" "side_fraction=0.25,upscale=4,hidden=128,epochs=45,images=768"
    python bench/mask_head_settings.py --smpn RUN/smpn.pt --overrides experiment=smpn_celebamaskhq512 --variants "" epochs=45
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from benchlib import format_table, machine_info, machine_line, write_results

from l2sae.editing import L2SAEEditor
from l2sae.evaluation.masks import fast_mask_agreement
from l2sae.nn import load_sae, read_extra
from l2sae.regions import SliceScheme
from l2sae.training.mask_head import MaskHeadSettings, distill_mask_head, distillation_images

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    "",
    "side_fraction=0.25,upscale=4",
    "side_fraction=0.25,upscale=4,epochs=45",
    "side_fraction=0.25,upscale=4,hidden=128,epochs=45,images=768",
]


def training_data(overrides: list[str]):
    """The data module of conf/train.yaml with ``overrides`` (none: the quick start's), set up for fitting, and
    that configuration's mask head settings."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        defaults = [f"paths.data_dir={REPO_ROOT / 'data'}", "data.num_workers=0"]
        cfg = compose(config_name="train", overrides=[*defaults, *overrides])
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    return data, dict(cfg.model.smpn.module.mask_head)


def parse_variant(text: str) -> dict:
    """ "key=value,key=value" -> {key: value} (values read as YAML scalars)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smpn", default=str(REPO_ROOT / "tests" / "fixtures" / "quickstart_smpn.pt"))
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="conf/train.yaml overrides: the data, the base settings"
    )
    parser.add_argument("--variants", nargs="+", default=VARIANTS, help='mask_head overrides per variant ("": none)')
    args = parser.parse_args()
    data, base_head = training_data(args.overrides)
    smpn, extra = load_sae(args.smpn, with_discriminators=False), read_extra(args.smpn)
    slicing, threshold = SliceScheme.from_dict(extra["slicing"]), extra["mask_threshold"]
    full = L2SAEEditor(smpn, smpn, slicing, masks="full", mask_threshold=threshold, precision="32")
    rows = []
    for variant in args.variants:
        settings = MaskHeadSettings.from_config({**base_head, **parse_variant(variant)})
        images = distillation_images(data.train_dataloader().dataset, settings.images)
        start = time.process_time()
        head, _ = distill_mask_head(smpn, images, slicing.channel_masks(), threshold, settings)
        seconds = time.process_time() - start
        fast = L2SAEEditor(smpn, smpn, slicing, mask_head=head, masks="fast", mask_threshold=threshold, precision="32")
        mattes, masks = fast_mask_agreement(fast, full, data.val_dataloader())
        rows.append(
            {
                "variant": variant or "base settings",
                "block": head.block,
                "cpu_s": seconds,
                **{f"matte_{roi}": iou for roi, iou in mattes.items()},
                "mask_iou_mean": sum(masks.values()) / len(masks),
            }
        )
    machine = machine_info(torch.device("cpu"))
    columns = [("variant", "mask_head settings"), ("block", "block"), ("cpu_s", "distil CPU s")]
    columns += [(f"matte_{roi}", f"matte IoU {roi}") for roi in slicing.roi_names]
    columns += [("mask_iou_mean", "mask IoU mean")]
    print(machine_line(machine))
    print(f"SMPN {args.smpn}; {len(data.val_dataloader().dataset)} validation faces")
    print(format_table(rows, columns))
    print(f"\nresults: {write_results('mask_head_settings', {'machine': machine, 'smpn': args.smpn, 'rows': rows})}")


if __name__ == "__main__":
    main()
