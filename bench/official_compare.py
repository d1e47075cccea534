"""L2SAE edits timed next to the official SAE code doing the same job, on the same weights, in one run.

The official pipeline of a region edit from pixels (what the issue measured): both encoders, the SMN
decode with the moved texture, the SMPN decode of the region's slice, the mask read off it and the same
alpha matting. With the codes and masks cached, a further region with a new style is one SMN decode and
the matting. L2SAE runs its editor: "fp32 full" (float32, full decode, full masks), "fp32" (float32, window
decode, full masks), "fp32 fast" (float32, window decode, the mask head's masks) and "auto" (the defaults:
precision auto, window decode, masks auto, i.e. the mask head's).

The variants are timed alternately (one call of each per round, ``--runs`` rounds after ``--warmup``),
so all of them see the same machine load; medians are reported with the load average of each row.
With random weights the masks are still computed (and timed) but then replaced by the synthetic face's
true region masks, so that windows have realistic sizes; trained networks use their own masks. Random
networks get a mask head of random weights (``--mask-head-side``, the cost of a trained one: its speed does
not depend on its weights); trained networks use the head their smpn.pt records (none: "fp32 fast" = "fp32").
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from benchlib import StallMeter, count_flops

from l2sae.data.synthfaces import draw_face
from l2sae.editing import EncodedFaces, L2SAEEditor
from l2sae.editing.window import decode_box
from l2sae.nn.ops import normalize
from l2sae.regions import CELEBAMASK_PARTS, DEFAULT_REGION_PARTS, ROI_NAMES, masks_from_region_decodes

REGIONS = ("nose", "eyes", "lips_mouth", "hair")
VARIANTS = ("official", "fp32 full", "fp32", "fp32 fast", "auto")
COLUMNS = (
    ("operation", "operation"),
    ("region", "region"),
    ("window_fraction", "window"),
    ("official_s", "official s"),
    ("fp32 full_s", "fp32 full s"),
    ("fp32_s", "fp32 s"),
    ("fp32 fast_s", "fp32 fast s"),
    ("auto_s", "auto s"),
    ("auto_precision", "auto ="),
    ("auto_masks", "auto masks"),
    ("official_gflop", "GFLOP official"),
    ("fp32_gflop", "GFLOP fp32"),
    ("fp32 fast_gflop", "GFLOP fp32 fast"),
    ("speedup_fp32", "x fp32"),
    ("speedup_fp32_fast", "x fp32 fast"),
    ("speedup_auto", "x auto"),
    ("max_diff_255", "max|d| fp32 /255"),
    ("load_average_1min", "load"),
    ("cpu_stall_percent", "stall %"),
)


def face_and_masks(size: int, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One synthetic face, 1 x 3 x size x size in [-1, 1], and its true region masks (1 x H x W)."""
    image, labels = draw_face(np.random.default_rng(0), size)
    masks = {}
    for roi, parts in DEFAULT_REGION_PARTS.items():
        codes = [CELEBAMASK_PARTS.index(part) + 1 for part in parts]
        masks[roi] = torch.from_numpy(np.isin(labels, codes)).float()[None].to(device)
    return torch.from_numpy(image).permute(2, 0, 1)[None].to(device) * 2 - 1, masks


def use_true_masks(editor: L2SAEEditor, masks: dict[str, torch.Tensor]) -> L2SAEEditor:
    """Make ``editor`` compute its masks as usual, then keep the true ones (random weights only)."""
    read = editor._read_masks

    def read_then_replace(faces: EncodedFaces, rois: tuple[str, ...]) -> torch.Tensor:
        read(faces, rois)
        faces.region_masks.update({roi: masks[roi] for roi in rois})
        return torch.stack([faces.region_masks[roi] for roi in rois], dim=1)

    editor._read_masks = read_then_replace
    return editor


class OfficialPipeline:
    """The official networks doing Algorithm 1 + 2 (the mask reading and matting are ours, shared)."""

    def __init__(self, smn, smpn, editor: L2SAEEditor, true_masks: dict[str, torch.Tensor] | None):
        self.smn, self.smpn, self.editor, self.true_masks = smn, smpn, editor, true_masks

    def moved_texture(self, texture: torch.Tensor, seed: int) -> torch.Tensor:
        direction = normalize(torch.randn(1, texture.shape[1], generator=torch.Generator().manual_seed(seed)))
        return normalize(texture + self.editor.style_sigma * direction.to(texture.device))

    def mask(self, smpn_structure: torch.Tensor, smpn_texture: torch.Tensor, roi: str) -> torch.Tensor:
        channels = self.editor.slicing.channel_masks([roi]).to(smpn_structure)[0][None, :, None, None]
        decode = self.smpn.decode_sliced(smpn_structure, smpn_texture, channels).clamp(-1, 1)
        mask = masks_from_region_decodes(decode[:, None], threshold=self.editor.mask_threshold)
        return self.true_masks[roi][:, None] if self.true_masks is not None else mask

    @torch.inference_mode()
    def edit_from_pixels(self, image: torch.Tensor, roi: str, seed: int) -> torch.Tensor:
        structure, texture = self.smn.encode(image)
        smpn_structure, smpn_texture = self.smpn.encode(image)
        global_edit = self.smn.decode(structure, self.moved_texture(texture, seed)).clamp(-1, 1)
        return self.editor.matting(image, global_edit, self.mask(smpn_structure, smpn_texture, roi))[0]

    @torch.inference_mode()
    def further_region(self, codes: tuple[torch.Tensor, torch.Tensor], image, mask, seed: int) -> torch.Tensor:
        global_edit = self.smn.decode(codes[0], self.moved_texture(codes[1], seed)).clamp(-1, 1)
        return self.editor.matting(image, global_edit, mask)[0]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _alternate(
    calls: dict[str, Callable[[], object]], runs: int, warmup: int, device: torch.device, clock: str = "wall"
) -> tuple[dict[str, float], dict]:
    """Median seconds of each call on ``clock`` (wall: elapsed; cpu: the process's user + system time, which
    other jobs on a shared machine inflate far less), timed in alternation (CUDA synchronised); also the last
    outputs."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    now = CLOCKS[clock]
    outputs = {}
    for _ in range(warmup):
        outputs = {name: call() for name, call in calls.items()}
    seconds = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            sync()
            start = now()
            outputs[name] = call()
            sync()
            seconds[name].append(now() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}, outputs


def compare_with_official(networks, official_networks, trained: bool, args, device) -> list[dict]:
    """Rows (per operation and region) of official vs L2SAE seconds, speed-ups and output differences."""
    image, true_masks = face_and_masks(networks.size, device)
    variants = {
        "fp32 full": {"precision": "32", "window": False, "masks": "full"},
        "fp32": {"precision": "32", "masks": "full"},
        "fp32 fast": {"precision": "32"},
        "auto": {},
    }
    editors = {name: networks.editor(**options) for name, options in variants.items()}
    if not trained:
        editors = {name: use_true_masks(editor, true_masks) for name, editor in editors.items()}
    official = OfficialPipeline(*official_networks, editors["fp32"], None if trained else true_masks)
    with torch.inference_mode():
        cached = {name: editor.encode(image, rois=ROI_NAMES) for name, editor in editors.items()}
        official_codes = official.smn.encode(image)

    def fresh_styles(faces: EncodedFaces) -> EncodedFaces:
        return dataclasses.replace(faces, global_edits={}, global_edit_boxes={})

    rows = []
    for operation in ("edit from pixels", "further region, new style"):
        for roi in args.regions:
            mask = cached["fp32"].region_masks[roi][:, None]
            if operation == "edit from pixels":
                calls = {"official": lambda roi=roi: official.edit_from_pixels(image, roi, seed=1)}
                calls |= {
                    name: lambda editor=editor, roi=roi: editor.edit_style(image, roi, 1.0, 1).images
                    for name, editor in editors.items()
                }
            else:
                calls = {"official": lambda mask=mask: official.further_region(official_codes, image, mask, seed=2)}
                calls |= {
                    name: lambda name=name, roi=roi: (
                        editors[name].edit_style(fresh_styles(cached[name]), roi, 1.0, 2).images
                    )
                    for name in editors
                }
            with StallMeter() as stall:
                seconds, outputs = _alternate(calls, args.runs, args.warmup, device, args.clock)
            counted = ("official", "fp32", "fp32 fast")
            flops = {name: count_flops(calls[name]) / 1e9 for name in counted} if args.count_flops else {}
            matte = editors["fp32"].matting.matte(mask)
            box = decode_box(matte, editors["fp32"].window_max_fraction)
            inside = (matte > 0).expand_as(outputs["official"])
            difference = (outputs["fp32"] - outputs["official"])[inside].abs().max().item() if inside.any() else 0.0
            rows.append(
                {
                    "size": networks.size,
                    "networks": networks.label,
                    "operation": operation,
                    "region": roi,
                    "window_fraction": "full" if box is None else f"{box.area / matte[0, 0].numel():.2f}",
                    **{f"{name}_s": value for name, value in seconds.items()},
                    "auto_precision": editors["auto"].precision,
                    "auto_masks": editors["auto"].mask_reading,
                    **{f"{name}_gflop": value for name, value in flops.items()},
                    "speedup_fp32": seconds["official"] / seconds["fp32"],
                    "speedup_fp32_fast": seconds["official"] / seconds["fp32 fast"],
                    "speedup_auto": seconds["official"] / seconds["auto"],
                    "max_diff_255": difference * 255 / 2,  # images span [-1, 1]: 2 = 255 levels
                    "load_average_1min": round(os.getloadavg()[0], 2),
                    "cpu_stall_percent": stall.percent,
                }
            )
            print(
                f"  {networks.size} px {operation:<26} {roi:<10} official {seconds['official']:.3f} s, "
                f"fp32 {seconds['fp32']:.3f} s, fp32 fast {seconds['fp32 fast']:.3f} s, auto {seconds['auto']:.3f} s",
                flush=True,
            )
    return rows
