"""Which pixels an edit's decode must cover: the bounding box of the matte, or all of them.

Outside the matte the composite is the input (Algorithm 2), so the SMN's restyle is needed only where
the matte is positive; :func:`l2sae.nn.window.decode_window` decodes just that box. When the box covers
most of the image (hair often does), the full decode costs about the same and is used instead.
"""

from __future__ import annotations

import torch

from l2sae.nn.window import Box


def matte_box(matte: torch.Tensor) -> Box:
    """The bounding box of ``matte > 0`` over the whole batch (matte B x 1 x H x W); empty: area 0."""
    support = (matte > 0).flatten(0, 1).any(dim=0)  # H x W
    rows, columns = support.any(dim=1).nonzero().flatten(), support.any(dim=0).nonzero().flatten()
    if rows.numel() == 0:
        return Box(0, 0, 0, 0)
    return Box(int(rows[0]), int(columns[0]), int(rows[-1]) + 1, int(columns[-1]) + 1)


def decode_box(matte: torch.Tensor, max_fraction: float) -> Box | None:
    """The box to decode for a composite through ``matte``: None (decode everything) when the box covers
    more than ``max_fraction`` of the image, a box of area 0 when the matte is empty (decode nothing)."""
    box = matte_box(matte)
    return None if box.area > max_fraction * matte.shape[-2] * matte.shape[-1] else box


def paste(images: torch.Tensor, pixels: torch.Tensor, box: Box) -> torch.Tensor:
    """A copy of ``images`` (B x 3 x H x W) with ``pixels`` (B x 3 x box) in ``box``."""
    pasted = images.clone()
    pasted[..., box.top : box.bottom, box.left : box.right] = pixels
    return pasted


def contains(outer: Box | None, inner: Box | None) -> bool:
    """Whether a decode of ``outer`` (None: the whole image) covers ``inner``."""
    if outer is None:
        return True
    if inner is None:
        return False
    if inner.area == 0:
        return True
    return (
        outer.top <= inner.top
        and outer.left <= inner.left
        and inner.bottom <= outer.bottom
        and inner.right <= outer.right
    )
