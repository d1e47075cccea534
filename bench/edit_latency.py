"""Latency of L2SAE editing at batch 1: encode, decode, a region edit, the five masks, further regions,
and what a photo adds (a 1-megapixel photo with one face: detection + landmarks + alignment, paste-back).

    python bench/edit_latency.py                          # 256 and 512 px, float32 and bfloat16
    python bench/edit_latency.py --sizes 256 --profile    # plus the top ops of the 256 px region edit
    python bench/edit_latency.py --sizes 64 --runs 2      # smoke run on the tiny preset (seconds)
    python bench/edit_latency.py --sizes 256 --tables official --official-repo DIR   # vs the official SAE code

``--official-repo DIR`` (a checkout of taesungp/swapping-autoencoder-pytorch) adds the side-by-side table
of :mod:`official_compare`: per region, the official code's edit against L2SAE's (fp32 with the full
decode and full masks; fp32 with the window decode and full masks, or fast masks; the defaults: precision
auto, window decode, masks auto) on the same weights, timed in alternation.

Random weights (speed does not depend on them): an SMN and an SMPN of the size's preset
(``benchlib.PRESET_FOR_SIZE``), noise off, the default slicing scheme, and a mask head of random weights on
the SMPN's block at ``--mask-head-side`` of the image side (conf/model/smpn.yaml's default, 1/8: the 32 px
block at 256 px); ``--masks`` chooses the operations table's mask reading (default auto: that head). Each operation is timed
``--runs`` times after ``--warmup`` untimed calls (median, min, max); its FLOPs come from
``torch.utils.flop_counter`` and give the achieved GFLOP/s. bfloat16 runs the editor with
``precision="bf16"`` (bfloat16 copies of the networks); its outputs are compared with float32 (PSNR, mask agreement).
``stall %`` is the share of the timing's wall time in which some task waited for a CPU: well above 0,
other jobs shared the machine and the times are inflated (re-run, or use ``--wait-quiet``).
Prints one table per size and writes everything to ``bench/results/edit_latency-<time>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from benchlib import (
    PRESET_FOR_SIZE,
    StallMeter,
    count_flops,
    format_table,
    machine_info,
    machine_line,
    psnr,
    wait_until_quiet,
    write_results,
)
from official_compare import COLUMNS as OFFICIAL_COLUMNS
from official_compare import REGIONS, compare_with_official
from official_sae import CHANGES, OfficialSAE, import_official

from l2sae.data.synthfaces import draw_face
from l2sae.editing import EncodedFaces, L2SAEEditor
from l2sae.evaluation.timing import TimingStats, measure_seconds
from l2sae.nn import SAEConfig, SwappingAutoencoder
from l2sae.nn.mask_head import MaskHead, head_block
from l2sae.photos import find_faces
from l2sae.regions import DEFAULT_MASK_THRESHOLD, ROI_NAMES, SliceScheme

# conf/slicing/default.yaml: the paper's 8-channel structure code
DEFAULT_SLICING = SliceScheme({"hair": (0, 1), "skin": (2, 3), "eyes": (4,), "nose": (5,), "lips_mouth": (6,)}, 8)
EDIT_ROI, FURTHER_ROI = "hair", "skin"
PHOTO_FIND, PHOTO_PASTE = "photo: find + align", "photo: paste back"

TABLE_COLUMNS = (
    ("operation", "operation"),
    ("precision", "prec"),
    ("median_s", "median s"),
    ("min_s", "min s"),
    ("max_s", "max s"),
    ("gflop", "GFLOP"),
    ("gflop_per_s", "GFLOP/s"),
    ("psnr_vs_fp32_db", "PSNR dB"),
    ("psnr_own_range_db", "PSNR own dB"),
    ("mask_agreement", "mask agree"),
    ("cpu_stall_percent", "stall %"),
)


@dataclass(frozen=True)
class Operation:
    """One timed call. ``run`` returns what is compared across precisions: images B x 3 x H x W
    (``kind="image"``), an EditResult (``"edit"``), masks B x R x H x W (``"mask"``) or nothing (None)."""

    name: str
    run: Callable[[], object]
    kind: str | None
    description: str


@dataclass(frozen=True)
class Networks:
    """What one table is measured on: an SMN, an SMPN, their slicing, the image side, a label and the SMPN's
    mask head (None: none)."""

    label: str
    size: int
    smn: SwappingAutoencoder
    smpn: SwappingAutoencoder
    slicing: SliceScheme
    mask_head: MaskHead | None = None
    mask_threshold: float | None = None

    def editor(self, precision: str = "auto", channels_last: bool | None = None, **options) -> L2SAEEditor:
        """An editor of these networks (``options``: more of its keyword arguments); ``channels_last`` None keeps
        the editor's default."""
        layout = {} if channels_last is None else {"channels_last": channels_last}
        return L2SAEEditor(
            self.smn,
            self.smpn,
            self.slicing,
            precision=precision,
            image_size=self.size,
            mask_head=self.mask_head,
            mask_threshold=self.mask_threshold,
            **layout,
            **options,
        )


def random_sae(preset: str, seed: int) -> SwappingAutoencoder:
    """An SAE of ``preset`` with random weights, no discriminators, deterministic (zero) noise."""
    torch.manual_seed(seed)
    network = SwappingAutoencoder(SAEConfig.preset(preset), with_discriminators=False)
    return network.eval().requires_grad_(False).set_noise("zero")


def random_networks(size: int, device: torch.device, head_side: float, head_upscale: int) -> Networks:
    preset = PRESET_FOR_SIZE[size]
    smn, smpn = random_sae(preset, seed=0).to(device), random_sae(preset, seed=1).to(device)
    torch.manual_seed(2)
    block = head_block(smpn, head_side)
    head = MaskHead.for_network(smpn, block, upscale=head_upscale, mask_threshold=DEFAULT_MASK_THRESHOLD).to(device)
    # recorded as a trained head that matched its full masks, so masks=auto reads it: time does not depend on weights
    head.matte_iou = {roi: 1.0 for roi in DEFAULT_SLICING.roi_names}
    label = f"{preset}, random weights, mask head of random weights on {block}"
    return Networks(label, size, smn, smpn, DEFAULT_SLICING, head, DEFAULT_MASK_THRESHOLD)


def trained_networks(smn_path: str, smpn_path: str, device: torch.device) -> Networks:
    editor = L2SAEEditor.from_checkpoints(smn_path, smpn_path, device=device)
    label = f"checkpoints {smn_path} + {smpn_path}"
    return Networks(
        label, editor.image_size, editor.smn, editor.smpn, editor.slicing, editor.mask_head, editor.mask_threshold
    )


def face_image(size: int, device: torch.device) -> torch.Tensor:
    """One synthetic face (l2sae.data.synthfaces), 1 x 3 x size x size in [-1, 1]."""
    image, _ = draw_face(np.random.default_rng(0), size)
    return torch.from_numpy(image).permute(2, 0, 1)[None].to(device) * 2 - 1


def operations(editor: L2SAEEditor, images: torch.Tensor) -> list[Operation]:
    """The benchmarked calls on one batch of images (B x 3 x H x W in [-1, 1])."""
    with torch.inference_mode():
        encoded = editor.encode(images)  # codes of both networks
        ready = editor.encode(images, rois=ROI_NAMES)  # ... and all five masks
        editor.edit_style(ready, EDIT_ROI, strength=1.0, seed=0)  # ... and the style change of seed 0
    layout = torch.channels_last if editor.channels_last else torch.contiguous_format
    structure = ready.smn_structure.to(editor.dtype).contiguous(memory_format=layout)
    texture = ready.smn_texture.to(editor.dtype)

    def forget(faces: EncodedFaces, keep_masks: bool) -> EncodedFaces:
        """The same codes with no style change (and, unless ``keep_masks``, no mask) remembered."""
        return dataclasses.replace(faces, region_masks=dict(faces.region_masks) if keep_masks else {}, global_edits={})

    @torch.inference_mode()
    def decode():
        return editor.smn.decode(structure, texture).float()

    return [
        Operation("encode", lambda: editor.encode(images), None, "SMN and SMPN encoders (each image once per network)"),
        Operation("decode", decode, "image", "SMN generator, one image"),
        Operation(
            "region edit",
            lambda: editor.edit_style(images, EDIT_ROI, strength=1.0, seed=0),
            "edit",
            "Algorithm 1+2 from pixels: SMN and SMPN encode, one SMPN region decode, SMN decode, matting",
        ),
        Operation(
            "5 masks",
            lambda: editor.masks(forget(encoded, keep_masks=False), ROI_NAMES),
            "mask",
            "all five ROI masks from cached codes: one batched SMPN decode of 5 sliced codes",
        ),
        Operation(
            "further region, same style",
            lambda: editor.edit_style(ready, FURTHER_ROI, strength=1.0, seed=0),
            "edit",
            "another region, same style change, cached codes, masks and global edit: matting only",
        ),
        Operation(
            "further region, new style",
            lambda: editor.edit_style(forget(ready, keep_masks=True), FURTHER_ROI, strength=1.0, seed=1),
            "edit",
            "another region, new style change, cached codes and masks: SMN decode + matting",
        ),
        Operation(
            "further region, new style+mask",
            lambda: editor.edit_style(forget(encoded, keep_masks=False), FURTHER_ROI, strength=1.0, seed=1),
            "edit",
            "another region, new style change, cached codes, mask not read yet: SMPN + SMN decode + matting",
        ),
    ]


def one_megapixel_photo() -> np.ndarray:
    """scikit-image's astronaut (a real photo) at 720 px on a 1200 x 840 canvas: 1.0 megapixel, one face."""
    from PIL import Image
    from skimage import data

    canvas = np.full((840, 1200, 3), 128, np.uint8)
    canvas[60:780, 300:1020] = np.asarray(Image.fromarray(data.astronaut()).resize((720, 720), Image.LANCZOS))
    return canvas


def photo_operations(editor: L2SAEEditor) -> list[Operation]:
    """What editing a photo adds to the edit itself: finding and aligning the face, pasting the edit back."""
    photo = one_megapixel_photo()
    aligned = find_faces(photo, editor.image_size)
    edit = editor.edit_style(aligned.crops, EDIT_ROI, strength=1.0, seed=0)
    return [
        Operation(
            PHOTO_FIND,
            lambda: find_faces(photo, editor.image_size),
            None,
            "1 MP photo, one face: HOG detection (downscaled copy), 68 landmarks, FFHQ alignment to the model size",
        ),
        Operation(
            PHOTO_PASTE,
            lambda: aligned.paste(edit.global_edit, edit.matte, seam=editor.matting),
            None,
            "the face's edit and matte warped back into the 1 MP photo (inverse transform), blended, seam smoothed",
        ),
    ]


def photo_overhead(rows: list[dict]) -> list[str]:
    """Per precision: (find + align + paste back) / region edit, the photo pipeline's share (target <= 30 %)."""
    lines = []
    for precision in dict.fromkeys(row["precision"] for row in rows):
        median = {row["operation"]: row["median_s"] for row in rows if row["precision"] == precision}
        if {PHOTO_FIND, PHOTO_PASTE, "region edit"} <= median.keys():
            overhead = median[PHOTO_FIND] + median[PHOTO_PASTE]
            lines.append(
                f"photo overhead ({precision}): find + align + paste back {overhead:.3f} s = "
                f"{100 * overhead / median['region edit']:.0f} % of the region edit ({median['region edit']:.3f} s)"
            )
    return lines


def compare(kind: str | None, output, reference) -> dict:
    """bf16 output vs the float32 reference: PSNR of images (over [-1, 1], and over the reference's own
    range: of the decode itself, or of an edit's global edit), fraction of equal mask pixels."""
    if kind == "image":
        return {"psnr_vs_fp32_db": psnr(output, reference), "psnr_own_range_db": psnr(output, reference, None)}
    if kind == "edit":
        return {
            "psnr_vs_fp32_db": psnr(output.images, reference.images),
            "psnr_own_range_db": psnr(output.global_edit, reference.global_edit, None),
        }
    if kind == "mask":
        return {"mask_agreement": (output == reference).float().mean().item()}
    return {}


def benchmark(networks: Networks, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Time every operation at each precision; FLOPs and reference outputs come from float32."""
    images = face_image(networks.size, device)
    reference_editor = networks.editor("32", args.channels_last, masks=args.masks)
    photo = photo_operations if args.photo else (lambda editor: [])
    reference_operations = operations(reference_editor, images) + photo(reference_editor)
    flops = {op.name: count_flops(op.run) for op in reference_operations}
    references = {op.name: op.run() for op in reference_operations if op.kind}
    rows = []
    for precision in args.precision:
        editor = networks.editor(precision, args.channels_last, masks=args.masks)
        for op in operations(editor, images) + photo(editor):
            if args.only and op.name not in args.only:
                continue
            wait_until_quiet(args.wait_quiet)
            with StallMeter() as stall:
                seconds = measure_seconds([op.run] * args.runs, device=device, warmup=args.warmup)
            stats = TimingStats.from_seconds(seconds)
            row = {
                "size": networks.size,
                "networks": networks.label,
                "operation": op.name,
                "description": op.description,
                "precision": {"32": "fp32", "bf16": "bf16"}.get(precision, f"auto={editor.precision}"),
                "channels_last": editor.channels_last,
                "masks": editor.mask_reading,
                **stats.to_dict(),
                "seconds": seconds,
                "gflop": flops[op.name] / 1e9,
                "gflop_per_s": flops[op.name] / 1e9 / stats.median_s,
                "cpu_stall_percent": stall.percent,
                "load_average_1min": os.getloadavg()[0],
            }
            if precision != "32":
                row.update(compare(op.kind, op.run(), references.get(op.name)))
            rows.append(row)
            print(f"  {networks.size} px {row['precision']:>4} {op.name:<28} median {stats.median_s:.3f} s", flush=True)
    return rows


def profile_region_edit(
    networks: Networks, precision: str, args: argparse.Namespace, device: torch.device
) -> list[dict]:
    """Top ops by self CPU time of one region edit (after warm-up), from torch.profiler."""
    editor = networks.editor(precision, args.channels_last, masks=args.masks)
    images = face_image(networks.size, device)
    for _ in range(max(1, args.warmup)):
        editor.edit_style(images, EDIT_ROI, seed=0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        editor.edit_style(images, EDIT_ROI, seed=0)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total_us = sum(event.self_cpu_time_total for event in events)
    return [
        {
            "op": event.key,
            "calls": event.count,
            "self_cpu_ms": event.self_cpu_time_total / 1e3,
            "self_cpu_percent": 100.0 * event.self_cpu_time_total / total_us,
        }
        for event in events[: args.profile_top]
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[256, 512],
        choices=sorted(PRESET_FOR_SIZE),
        help="image sides (64: tiny preset, for smoke runs)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed calls per operation (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["32", "bf16"],
        choices=["32", "bf16", "auto"],
        help="editor precisions to time (PSNR always compares with float32)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the editor's channels_last option (default: the editor's default)",
    )
    parser.add_argument(
        "--masks", default="auto", choices=["auto", "fast", "full"], help="the operations table's editor.masks"
    )
    parser.add_argument(
        "--mask-head-side",
        type=float,
        default=0.125,
        help="random networks: the mask head's block as a fraction of the image side (default 0.125)",
    )
    parser.add_argument(
        "--mask-head-upscale", type=int, default=4, help="random networks: the mask head's upscale (default 4)"
    )
    parser.add_argument("--only", nargs="+", default=None, help="time only these operations (by name)")
    parser.add_argument("--profile", action="store_true", help="also profile one region edit per size and precision")
    parser.add_argument("--profile-top", type=int, default=15, help="ops listed per profile (default 15)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--photo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time what a photo adds (needs dlib and its landmark model; --no-photo: skip, as on a GPU machine)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each operation wait up to SECONDS for other jobs to leave the CPU "
        "(10 s CPU pressure < 10%%; Linux only); default 0",
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        default=["operations", "official"],
        choices=["operations", "official"],
        help="operations: each editor operation at each precision; official: vs the official code (needs "
        "--official-repo; skipped without it)",
    )
    parser.add_argument("--official-repo", help="a checkout of taesungp/swapping-autoencoder-pytorch")
    parser.add_argument(
        "--count-flops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="official comparison: also count the FLOPs of the official and the fp32 L2SAE call (one more call each)",
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="official comparison: time each call on the wall clock (default) or by the process's CPU time "
        "(user + sys; with --threads 1 far less disturbed by other jobs on a shared machine)",
    )
    parser.add_argument(
        "--regions", nargs="+", default=list(REGIONS), choices=ROI_NAMES, help="regions of the official comparison"
    )
    parser.add_argument("--smn", help="time a trained SMN checkpoint (with --smpn) instead of random networks")
    parser.add_argument("--smpn", help="the SMPN checkpoint that goes with --smn (slicing read from it)")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if bool(args.smn) != bool(args.smpn):
        parser.error("--smn and --smpn go together")
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = machine_info(device)
    print(machine_line(machine), flush=True)
    results = {"benchmark": "edit_latency", "machine": machine, "settings": vars(args), "rows": [], "profiles": []}
    official = None
    if "official" in args.tables and args.official_repo:
        official = import_official(args.official_repo)
        results |= {"official_rows": [], "official_changes": CHANGES, "official_stand_ins": official[2]}
        print(f"{CHANGES}; stand-in modules: {', '.join(official[2]) or 'none'}", flush=True)
    if args.smn:
        setups = [lambda: trained_networks(args.smn, args.smpn, device)]
    else:
        setups = [
            lambda size=size: random_networks(size, device, args.mask_head_side, args.mask_head_upscale)
            for size in args.sizes
        ]
    for setup in setups:
        networks = setup()
        if official is not None:
            official_networks = [
                OfficialSAE(official[0], official[1], network) for network in (networks.smn, networks.smpn)
            ]
            rows = compare_with_official(networks, official_networks, bool(args.smn), args, device)
            results["official_rows"].extend(rows)
            print(
                f"\n{networks.size} px ({networks.label}), batch 1: official SAE code vs L2SAE, medians of "
                f"{args.runs} alternating rounds ({args.clock} clock); x = official s / L2SAE s; {CHANGES}"
            )
            print(machine_line(machine_info(device)))
            print(format_table(rows, OFFICIAL_COLUMNS) + "\n", flush=True)
        if "operations" not in args.tables:
            continue
        rows = benchmark(networks, args, device)
        results["rows"].extend(rows)
        print(
            f"\n{networks.size} px ({networks.label}), batch 1, channels_last={rows[0]['channels_last']}, "
            f"masks={rows[0]['masks']}"
        )
        print(machine_line(machine_info(device)))
        print(format_table(rows, TABLE_COLUMNS) + "\n", flush=True)
        print("\n".join(photo_overhead(rows)) + "\n", flush=True)
        if args.profile:
            for precision in args.precision:
                top = profile_region_edit(networks, precision, args, device)
                results["profiles"].append({"size": networks.size, "precision": precision, "top_ops": top})
                print(f"top ops by self CPU time, region edit, {networks.size} px, precision {precision}")
                print(
                    format_table(
                        top, (("op", "op"), ("calls", "calls"), ("self_cpu_ms", "self ms"), ("self_cpu_percent", "%"))
                    )
                    + "\n",
                    flush=True,
                )
    results["machine"]["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    print(f"results: {write_results('edit_latency', results)}")


if __name__ == "__main__":
    main()
