"""Fitting a face image of any size to the model's square input, and carrying an edit back.

Images are float tensors in [-1, 1], 3 x H x W (as :func:`l2sae.utils.images.read_image` returns them).
The model sees a square S x S view of each image (the whole image squashed, or its centre square); an
edit made on that view is written back at the original size by adding the change to the original
pixels, so pixels the edit did not touch stay exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.functional import resize

from l2sae.utils.choices import Choice


class SizeMode(Choice):
    """How a whole picture becomes the model's square (the ``size_mode`` setting; see :func:`fit_to_model`)."""

    resize = "resize"
    center_crop = "center_crop"


@dataclass(frozen=True)
class Placement:
    """Where the model's square view sits in the original image, in original pixels.

    original_size: (H, W) of the original; box: (top, left, height, width) of the viewed area.
    """

    original_size: tuple[int, int]
    box: tuple[int, int, int, int]


def fit_to_model(image: torch.Tensor, size: int, mode: str = "resize") -> tuple[torch.Tensor, Placement]:
    """Square ``size`` x ``size`` view of a 3 x H x W image, and where it came from.

    mode "resize" squashes the whole image (the aspect ratio comes back in :func:`paste_back`);
    "center_crop" takes the central min(H, W) square.
    """
    mode = SizeMode.parse(mode, "size_mode")
    height, width = image.shape[-2:]
    if mode == "resize":
        box = (0, 0, height, width)
    else:
        side = min(height, width)
        box = ((height - side) // 2, (width - side) // 2, side, side)
    top, left, box_height, box_width = box
    view = image[..., top : top + box_height, left : left + box_width]
    if (box_height, box_width) != (size, size):
        view = resize(view, [size, size], antialias=True)
    return view.clamp(-1.0, 1.0), Placement(original_size=(height, width), box=box)


def paste_back(
    original: torch.Tensor, model_input: torch.Tensor, edited: torch.Tensor, placement: Placement
) -> torch.Tensor:
    """Carry an edit made on the model's view over to the original image.

    original: 3 x H x W; model_input, edited: 3 x S x S (the view before and after the edit), all in [-1, 1].
    The change ``edited - model_input`` is resized to the viewed box and added to the original there,
    so the original's fine detail survives and pixels the edit left alone stay exactly the same.
    """
    top, left, box_height, box_width = placement.box
    change = edited - model_input
    if change.shape[-2:] != (box_height, box_width):
        change = resize(change, [box_height, box_width], antialias=False)
    result = original.clone()
    box = result[..., top : top + box_height, left : left + box_width]
    result[..., top : top + box_height, left : left + box_width] = (box + change).clamp(-1.0, 1.0)
    return result
