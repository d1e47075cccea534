"""The designs of a structure swap (:meth:`L2SAEEditor.swap_structure`, option ``editor.structure_swap``).

A swap copies the region's structure channels (the SMPN's slicing) from a donor's code into the input's,
decodes the spliced code with the input's texture and composites the decode into the input through a
matte. The designs differ in which network's code is spliced and decoded, and in the matte:

- ``smn_sliced``: the SMN's code (never trained sliced: its channels only share the SMPN's layout), SMN
  decode; matte: the region in the input or in the donor.
- ``smn_sliced_swapped_matte``: as ``smn_sliced``, matte: the region in the input or in the spliced
  SMPN code (the SMPN's region decode of the swapped structure: where the new region will be).
- ``smpn``: the SMPN's own code (trained sliced), SMPN decode; matte: the region in the input or the donor.
- ``smpn_swapped_matte``: the SMPN's code and decode; matte: the region in the input or the swapped code.

The default, :data:`DEFAULT_STRUCTURE_SWAP`, is the design with the best measured error against the
synthetic ground truth (README, "Structure edits").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from l2sae.utils.choices import Choice


@dataclass(frozen=True)
class SwapDesign:
    """decoder: "smn" | "smpn", the network whose code is spliced and decoded; matte: "donor" (the region
    in the input or the donor) | "swapped" (the region in the input or the spliced SMPN code)."""

    decoder: str
    matte: str


STRUCTURE_SWAP_DESIGNS: dict[str, SwapDesign] = {
    "smn_sliced": SwapDesign("smn", "donor"),
    "smn_sliced_swapped_matte": SwapDesign("smn", "swapped"),
    "smpn": SwapDesign("smpn", "donor"),
    "smpn_swapped_matte": SwapDesign("smpn", "swapped"),
}
# the names of the designs (the ``editor.structure_swap`` setting, ``structure_swap.designs`` of evaluate.py)
SwapDesignName = Choice("SwapDesignName", {name: name for name in STRUCTURE_SWAP_DESIGNS})
DEFAULT_STRUCTURE_SWAP = SwapDesignName.smpn_swapped_matte


def splice(structure: torch.Tensor, donor_structure: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """structure B x C x h x w with the channels where ``channels`` (C, in {0, 1}) is 1 taken from ``donor_structure``."""
    channels = channels.to(structure)[None, :, None, None]
    return structure * (1.0 - channels) + donor_structure * channels
