"""Render docs/photo_pipeline.png: a real photo (scikit-image's astronaut) through the photo pipeline.

    python docs/make_photo_figure.py --smn logs/latest/smn.pt --smpn logs/latest/smpn.pt --roi hair --strength 2

Panels: the photo with the 68 landmarks and the FFHQ alignment square drawn | the aligned crop (at the
networks' size, shown enlarged) | the edit pasted back into the photo at full size.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from l2sae.editing import L2SAEEditor
from l2sae.photos import draw_faces
from l2sae.utils.images import to_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smn", default="logs/latest/smn.pt")
    parser.add_argument("--smpn", default="logs/latest/smpn.pt")
    parser.add_argument("--roi", default="hair")
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("photo_pipeline.png")))
    args = parser.parse_args()
    editor = L2SAEEditor.from_checkpoints(args.smn, args.smpn, precision="32")
    photo = data.astronaut()
    result = editor.edit_photo(photo, args.roi, strength=args.strength, seed=args.seed)
    height = photo.shape[0]
    crop = Image.fromarray(to_uint8(result.faces[0].aligned).permute(1, 2, 0).numpy())
    panels = [draw_faces(photo, result.prepared.faces), crop.resize((height, height), Image.LANCZOS), result.image]
    figure = Image.new("RGB", (sum(panel.width for panel in panels) + 2 * 8, height), (255, 255, 255))
    left = 0
    for panel in panels:
        figure.paste(panel, (left, 0))
        left += panel.width + 8
    figure.save(args.out)
    print(f"wrote {args.out}: {np.asarray(figure).shape[1]} x {height} px")


if __name__ == "__main__":
    main()
