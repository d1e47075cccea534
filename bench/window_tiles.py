"""Would tiles beat the bounding box? Work of the window decode per region, as FLOP counts.

The editor decodes a region's restyle only in the bounding box of its matte (``l2sae.nn.window``). Hair's box
covers most of the image although its matte covers about half of it, so a tighter window was considered: square
tiles of the image, decoding only those the matte touches (each tile trimmed to the matte's pixels in it), every
tile with the halo its layers read. This script counts the work (``torch.utils.flop_counter``, multiply-add = 2;
independent of the CPU and its load) of the SMN decode for the synthetic face's true region mattes: the full
decode, the bounding box, and tiles of each ``--tiles`` side; then tiles of only the last ``--late`` upsampling
blocks, the blocks before them decoded whole (their halos are the smallest there). Random weights of the official
architecture: the count depends only on the shapes.

    python bench/window_tiles.py                      # 256 px (ffhq256), tiles of 128, 64 and 32 px
    python bench/window_tiles.py --size 512 --tiles 256 128 64
"""

from __future__ import annotations

import argparse

import torch
from benchlib import PRESET_FOR_SIZE, count_flops
from edit_latency import random_sae
from official_compare import face_and_masks

from l2sae.editing.matting import AlphaMatting
from l2sae.editing.window import decode_box
from l2sae.nn.generator import UpsamplingResBlock
from l2sae.nn.ops import normalize
from l2sae.nn.window import Box, decode_window, input_windows, upsample_in_windows
from l2sae.regions import ROI_NAMES
from l2sae.utils.tables import markdown_table


def touched_tiles(support: torch.Tensor, side: int) -> list[Box]:
    """The tiles of ``side`` px (H x W boolean ``support``) that hold matte pixels, each trimmed to them."""
    boxes = []
    for top in range(0, support.shape[0], side):
        for left in range(0, support.shape[1], side):
            rows, columns = torch.nonzero(support[top : top + side, left : left + side], as_tuple=True)
            if len(rows):
                boxes.append(
                    Box(
                        top + int(rows.min()),
                        left + int(columns.min()),
                        top + int(rows.max()) + 1,
                        left + int(columns.max()) + 1,
                    )
                )
    return boxes


def decode_late_tiles(generator, structure, texture, tiles: list[Box], late: int) -> None:
    """The decode with its blocks before the last ``late`` upsampling ones run on the whole image, and those
    last blocks (and ToRGB) on each tile's window only (the pixels are not assembled: only the work counts)."""
    texture = normalize(texture)
    x = generator.SpatialCodeModulation(normalize(structure), texture)
    blocks = [getattr(generator, name) for name in generator.blocks]
    upsampling = [block for block in blocks if isinstance(block, UpsamplingResBlock)]
    for block in blocks[: len(blocks) - late]:
        x = block(x, texture)
    for tile in tiles:
        windows = input_windows(generator, tile, tuple(structure.shape[-2:]))[-late:]
        generator.ToRGB(upsample_in_windows(upsampling[-late:], x, texture, windows, tile), texture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, choices=[64, 256, 512])
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 64, 32], help="tile sides in pixels")
    parser.add_argument("--late", type=int, nargs="+", default=[1, 2], help="upsampling blocks tiled at the end")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    smn = random_sae(PRESET_FOR_SIZE[args.size], seed=0)
    image, masks = face_and_masks(args.size, torch.device("cpu"))
    structure, texture = smn.encode(image)

    def work(box: Box) -> float:
        return count_flops(lambda: decode_window(smn.G, structure, texture, box)) / 1e9

    full = count_flops(lambda: smn.G(structure, texture)) / 1e9
    upsamplings = sum(isinstance(getattr(smn.G, name), UpsamplingResBlock) for name in smn.G.blocks)
    # the blocks before the upsampling ones, run once on the whole code (no tile: none of the upsampling work)
    head = count_flops(lambda: decode_late_tiles(smn.G, structure, texture, [], upsamplings)) / 1e9
    print(
        f"SMN decode at {args.size} px ({PRESET_FOR_SIZE[args.size]}): full {full:.1f} GFLOP, of which the blocks "
        f"before the upsampling ~{head:.1f}; tiles share them"
    )
    header = ["region", "matte", "box", "box GFLOP", *(f"{side} px tiles: n, GFLOP" for side in args.tiles)]
    late_header = ["region", *(f"last {late} tiled, {side} px: GFLOP" for late in args.late for side in args.tiles)]
    rows, late_rows = [], []
    matting = AlphaMatting()
    pixels = args.size**2
    for roi in ROI_NAMES:
        matte = matting.matte(masks[roi][None])  # 1 x 1 x H x W
        support = matte[0, 0] > 0
        box = decode_box(matte, 1.0)
        cells = [roi, f"{support.sum() / pixels:.0%}", f"{box.area / pixels:.0%}", f"{work(box):.1f}"]
        tiles_by_side = [touched_tiles(support, side) for side in args.tiles]
        for tiles in tiles_by_side:
            cells.append(f"{len(tiles)}, {head + sum(work(tile) - head for tile in tiles):.1f}")
        late_cells = [roi]
        for late in args.late:
            for tiles in tiles_by_side:
                flops = count_flops(
                    lambda tiles=tiles, late=late: decode_late_tiles(smn.G, structure, texture, tiles, late)
                )
                late_cells.append(f"{flops / 1e9:.1f}")
        rows.append(cells)
        late_rows.append(late_cells)
    print(markdown_table(header, rows))
    print(f"\nonly the last upsampling blocks tiled (full decode {full:.1f} GFLOP):")
    print(markdown_table(late_header, late_rows))


if __name__ == "__main__":
    main()
