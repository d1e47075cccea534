"""The L2SAE editor: region masks from the SMPN, global edits from the SMN, alpha matting.

Algorithm 1 (style edit of a region r of images x):
    s, t = SMN.encode(x);  t' = normalize(t + strength * sigma * n)   (n: a random unit direction)
    x_g = SMN.decode(s, t');  m = mask(SMPN, x, r);  y = matting(x, x_g, m)   (Algorithm 2)

Every public method takes images (B x 3 x H x W in [-1, 1]) or the :class:`EncodedFaces` that
:meth:`L2SAEEditor.encode` returns, so callers that edit several regions encode each image once
per network. Region masks are read from one batched SMPN decode of all requested regions (or, with a mask
head, from that decode cut short at the head's block: ``masks`` in :class:`L2SAEEditor`), and
masks and style edits are remembered in the ``EncodedFaces``: a further region on cached faces costs
one SMPN decode if its mask is new and one SMN decode if its style change is new, none otherwise.

Several regions in one call are edited as their union: the masks are combined with a pixel-wise
maximum before the matte is blurred, and one global edit is composited inside it.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from l2sae.editing import photo as photo_editing
from l2sae.editing.matting import AlphaMatting
from l2sae.editing.swap_designs import DEFAULT_STRUCTURE_SWAP, STRUCTURE_SWAP_DESIGNS, SwapDesignName, splice
from l2sae.editing.window import contains, decode_box, paste
from l2sae.nn.checkpoint import UnknownImageSizeError, load_sae, read_extra
from l2sae.nn.layers import NoiseInjection
from l2sae.nn.mask_head import MaskHead, masks_from_logits, region_mask_logits
from l2sae.nn.ops import normalize
from l2sae.nn.sae import SwappingAutoencoder
from l2sae.nn.window import Box, decode_window
from l2sae.regions import DEFAULT_MASK_THRESHOLD, SliceScheme, masks_from_region_decodes
from l2sae.utils.choices import Choice
from l2sae.utils.errors import ConfigError
from l2sae.utils.precision import PRECISION_DTYPES, resolve_precision

log = logging.getLogger(__name__)

GLOBAL_EDITS_REMEMBERED = 4  # style edits (strength x style_sigma, seed) kept per EncodedFaces
# how region masks are read (the ``editor.masks`` setting): see L2SAEEditor's ``masks``
MaskReading = Choice("MaskReading", {"auto": "auto", "fast": "fast", "full": "full"})
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes 0..2^63-1 without wrapping
MAX_IMAGE_SIZE = 4096  # the official SAE models go up to 1024 px; a larger side is a typo or a bad file
RANGE_TOLERANCE = 0.01  # images may exceed [-1, 1] by rounding, not by more


@dataclass(frozen=True)
class EditResult:
    """images: the local edit, B x 3 x H x W in [-1, 1]; matte: the blurred matte used, B x 1 x H x W in
    [0, 1]; global_edit: the SMN's output for the whole image, B x 3 x H x W in [-1, 1]."""

    images: torch.Tensor
    matte: torch.Tensor
    global_edit: torch.Tensor


@dataclass(frozen=True, eq=False)
class EncodedFaces:
    """A batch of faces encoded once by both networks (made by :meth:`L2SAEEditor.encode`).

    images: B x 3 x H x W in [-1, 1] on the editor's device; smn_structure / smpn_structure:
    B x C x H/2^k x W/2^k; smn_texture / smpn_texture: B x T. The editor that made these faces
    remembers in them the masks read so far (``region_masks``: ROI name -> B x H x W in [0, 1]) and
    its latest style edits (``global_edits``: (strength x style_sigma, seed) -> B x 3 x H x W, decoded inside
    ``global_edit_boxes[key]`` and equal to the input elsewhere; a box of None: decoded everywhere).
    """

    images: torch.Tensor
    smn_structure: torch.Tensor
    smn_texture: torch.Tensor
    smpn_structure: torch.Tensor
    smpn_texture: torch.Tensor
    region_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    global_edits: dict[tuple[float, int], torch.Tensor] = field(default_factory=dict)
    global_edit_boxes: dict[tuple[float, int], Box | None] = field(default_factory=dict)  # decoded box, None: all
    editor: object = field(default=None, repr=False)  # the editor that made them (None: made by hand, unchecked)

    def __len__(self) -> int:
        return self.images.shape[0]


Faces = torch.Tensor | EncodedFaces


def _check_images(images: torch.Tensor, name: str) -> None:
    """B x 3 x H x W float images with B >= 1, finite, in [-1, 1]; else a ValueError naming ``name``.

    Values clearly outside [-1, 1] (images in [0, 255]) are refused. Images in [0, 1] cannot be told apart
    from bright images in [-1, 1] (the synthetic faces have no pixel below mid-grey), so they pass.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected images B x 3 x H x W in [-1, 1] or EncodedFaces, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor in [-1, 1], got {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name}: an empty batch (0 images); give at least one image")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name}: {int((~torch.isfinite(images)).sum())} values are NaN or infinite; fix the input")
    low, high = (float(value) for value in torch.aminmax(images))
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name}: values from {low:g} to {high:g}; expected images in [-1, 1] (for 0..255 pixels: x / 127.5 - 1)"
        )


def check_strength(strength: object, key: str = "strength") -> float:
    """A style strength: a finite number (not a boolean); else a ConfigError naming ``key``."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ConfigError(f"{key}: expected a finite number, got {strength!r}")
    return float(strength)


def check_seed(seed: object, key: str = "seed") -> int | None:
    """A seed: None or an integer in 0..2^63-1 (not a boolean); else a ConfigError naming ``key``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{key}: expected an integer from 0 to 2^63-1 or null, got {seed!r}")
    return seed


def check_mask_threshold(threshold: object, key: str = "editor.mask_threshold") -> float:
    """A mask threshold: a number in [0, 1) (region brightness above it is in the mask); else a ConfigError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ConfigError(f"{key}: expected a number from 0 up to (not including) 1, got {threshold!r}")
    return float(threshold)


def check_image_size(size: object, networks: Sequence[SwappingAutoencoder], key: str = "editor.image_size") -> int:
    """The side images are edited at: an integer up to MAX_IMAGE_SIZE that the networks' encoders can reduce."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"{key}: expected an image side from 1 to {MAX_IMAGE_SIZE} pixels, got {size!r}")
    for network in networks:
        try:
            network.config.check_image_size(size, size, key=key)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    return size


def _image_size(faces: Faces) -> tuple[int, ...]:
    return tuple((faces.images if isinstance(faces, EncodedFaces) else faces).shape[-2:])


def _ready_for_inference(network: SwappingAutoencoder, dtype: torch.dtype) -> bool:
    """Whether ``network`` is in eval mode, without gradients or noise, with ``dtype`` weights."""
    return (
        not any(module.training for module in network.modules())
        and all(not parameter.requires_grad and parameter.dtype == dtype for parameter in network.parameters())
        and all(module.mode == "zero" for module in network.modules() if isinstance(module, NoiseInjection))
    )


def _inference_copy(network: SwappingAutoencoder, dtype: torch.dtype) -> SwappingAutoencoder:
    """``network`` ready for inference: itself when it is already, else a copy set up so (eval mode, no
    gradients, no noise, ``dtype``); the caller's network is never changed."""
    if _ready_for_inference(network, dtype):
        return network
    return copy.deepcopy(network).eval().requires_grad_(False).set_noise("zero").to(dtype)


def load_for_inference(
    path: str | os.PathLike, device: str | torch.device, image_size: int | None = None
) -> SwappingAutoencoder:
    """A checkpoint's SAE (no discriminators) in eval mode, without gradients or noise: no copy needed.

    ``image_size`` serves as the crop size of an official file without ``D.`` weights, which cannot record it.
    """
    try:
        network = load_sae(path, map_location=device, with_discriminators=False)
    except UnknownImageSizeError as error:
        if image_size is None:
            raise ConfigError(
                f"editor.image_size: {path} does not record the image size its networks were trained at "
                f"(an official SAE file without D. weights); give it, e.g. editor.image_size=256 (or 512, 1024)"
            ) from error
        network = load_sae(path, {"crop_size": int(image_size)}, map_location=device, with_discriminators=False)
    return network.eval().requires_grad_(False).set_noise("zero")


def _broadcast(tensor: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """Expand a batch of 1 to ``batch``; any other mismatch is an error naming the argument."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(f"{name}: batch of {tensor.shape[0]} does not match the {batch} images (use 1 or {batch})")


def check_checkpoint_files(smn_path: str | os.PathLike, smpn_path: str | os.PathLike) -> None:
    """Fail, naming ``ckpt.smn`` / ``ckpt.smpn`` and the training command, unless both files exist."""
    for name, path in (("smn", smn_path), ("smpn", smpn_path)):
        if not path or not Path(path).is_file():
            raise FileNotFoundError(
                f"ckpt.{name}: checkpoint {path} not found; train the networks with `python train.py` first "
                "(it writes smn.pt and smpn.pt and points logs/latest at the run), or pass ckpt.smn=PATH "
                "ckpt.smpn=PATH"
            )


class L2SAEEditor:
    """Region style and structure edits with an SMN and an SMPN (see the module docstring).

    smn, smpn: SwappingAutoencoders (discriminators not needed), left as given: the editor runs copies in eval
    mode without gradients or noise (none is made for a network already so); slicing: which SMPN structure channels
    belong to which region. style_sigma: length of the texture noise relative to the unit texture code
    at strength 1. mask_threshold / soft_masks: how masks are read off the SMPN's region decodes
    (:func:`l2sae.regions.masks_from_region_decodes`; a threshold of None: ``DEFAULT_MASK_THRESHOLD``).
    masks: how region masks are read. "full": off the SMPN's sliced decodes at the image's resolution.
        "fast": by ``mask_head`` (:mod:`l2sae.nn.mask_head`), distilled from those full masks: the sliced decode
        runs only up to the head's block (e.g. 32 of 256 px: about a tenth of the decode's work), the head's
        logits are upsampled to the image size and thresholded at 0 (``soft_masks``: their sigmoid); it predicts
        the full masks of the threshold it was distilled at, so another ``mask_threshold`` needs "full".
        "auto" (the default): the head reads each region whose masks it was measured to match, i.e. whose
        recorded validation matte IoU (``MaskHead.matte_iou``, written by training) is at least
        ``fast_mask_min_iou`` (0.97), if it was made for this threshold; every other region is read in full (a
        head that records no measurement reads none; ``mask_reading`` says "fast", "full" or "mixed", and
        ``fast_rois`` which regions the head reads). ``mask_head``: a :class:`MaskHead` for this SMPN (or None;
        ``from_checkpoints``: the one recorded in smpn.pt).
    matting: Algorithm 2's settings.
    precision: "auto" (bf16 where the networks' device runs it natively, else float32: see
        :mod:`l2sae.utils.precision`), "32" or "bf16": the editor runs bfloat16 copies of the networks (weights
        and activations in bfloat16, so convolutions use the CPU's bf16 dot-product or AMX units through oneDNN,
        faster than autocast, which casts every weight on every call). Codes, masks and matting stay float32.
        Measured times: README, Performance.
    channels_last: decode from channels-last structure codes (the generator's convolutions then keep that
        layout, a little faster on CPUs; the encoder, which it slowed, always gets contiguous images).
    window: decode the SMN's restyle only in the bounding box of the matte (:mod:`l2sae.nn.window`: equal to
        the full decode there up to float rounding; ``global_edit`` is then the input outside that box), unless
        the box covers more than ``window_max_fraction`` of the image, where the full decode is used.
    image_size: the side the networks were trained at (default: the SMPN's crop size); images of that
    size are what :func:`l2sae.editing.placement.fit_to_model` prepares.
    structure_swap: the design of :meth:`swap_structure` (:mod:`l2sae.editing.swap_designs`).
    """

    def __init__(
        self,
        smn: SwappingAutoencoder,
        smpn: SwappingAutoencoder,
        slicing: SliceScheme | Mapping,
        *,
        style_sigma: float = 1.0,
        mask_threshold: float | None = None,
        soft_masks: bool = False,
        masks: str = "auto",
        mask_head: MaskHead | None = None,
        fast_mask_min_iou: float = 0.97,
        matting: AlphaMatting | Mapping | None = None,
        precision: str | int = "auto",
        channels_last: bool = True,
        window: bool = True,
        window_max_fraction: float = 0.6,
        image_size: int | None = None,
        structure_swap: str = DEFAULT_STRUCTURE_SWAP,
    ) -> None:
        self.slicing = slicing if isinstance(slicing, SliceScheme) else SliceScheme.from_dict(slicing)
        smpn_channels = smpn.config.structure_channels
        if self.slicing.num_channels != smpn_channels:
            raise ConfigError(
                f"{self.slicing.key}.num_channels: the slicing is for {self.slicing.num_channels} structure "
                f"channels but the SMPN has {smpn_channels}"
            )
        self.precision = resolve_precision(precision, next(smn.parameters()).device)
        if not style_sigma >= 0:
            raise ConfigError(f"editor.style_sigma: expected a non-negative number, got {style_sigma!r}")
        self.style_sigma = float(style_sigma)
        self.mask_threshold = check_mask_threshold(DEFAULT_MASK_THRESHOLD if mask_threshold is None else mask_threshold)
        self.soft_masks = bool(soft_masks)
        self.mask_head, self.fast_rois, why = self._mask_reading(masks, mask_head, smpn, fast_mask_min_iou)
        self.mask_reading_note = why  # why auto reads regions in full although a head was given ("": no reason)
        if why:
            log.info("editor.masks=%s: %s%s", masks, self.mask_reading_text(), why)
        self.matting = (
            matting
            if isinstance(matting, AlphaMatting)
            else AlphaMatting(**{"key": "editor.matting", **(matting or {})})
        )
        self.channels_last = bool(channels_last)
        if not 0.0 <= window_max_fraction <= 1.0:
            raise ConfigError(f"editor.window_max_fraction: expected a number in [0, 1], got {window_max_fraction!r}")
        self.window, self.window_max_fraction = bool(window), float(window_max_fraction)
        self.image_size = check_image_size(smpn.config.crop_size if image_size is None else image_size, (smn, smpn))
        self.matting.check_fits(self.image_size, key="editor.matting")
        self.structure_swap = SwapDesignName.parse(structure_swap, "editor.structure_swap")
        self.dtype = PRECISION_DTYPES[self.precision]
        self.networks_given = (id(smn), id(smpn), id(mask_head))  # which networks (not copies) it reads with
        self.smn = _inference_copy(smn, self.dtype)
        self.smpn = _inference_copy(smpn, self.dtype)

    def _mask_reading(
        self, masks: str, head: MaskHead | None, smpn: SwappingAutoencoder, min_iou: float
    ) -> tuple[MaskHead | None, frozenset[str], str]:
        """The head the masks are read with (a float32 copy, eval; None: all in full), the regions it reads, and
        why ``auto`` reads some regions in full although a head was given (for the log; "" otherwise)."""
        masks = MaskReading.parse(masks, "editor.masks")
        if not 0.0 <= min_iou <= 1.0:
            raise ConfigError(f"editor.fast_mask_min_iou: expected a number in [0, 1], got {min_iou!r}")
        if head is not None:
            try:
                head.check_fits(smpn, key="editor.mask_head")
            except ValueError as error:
                raise ConfigError(str(error)) from error
        usable = head is not None and head.mask_threshold == self.mask_threshold
        threshold_note = (
            f"the mask head predicts the masks of threshold {head.mask_threshold:g}, not {self.mask_threshold:g}"
            if head is not None and not usable
            else ""
        )
        if masks == "fast" and not usable:
            reason = threshold_note or (
                "no mask head was given (the SMPN checkpoint records none: distil one with "
                "model.smpn.module.mask_head in training)"
            )
            raise ConfigError(f"editor.masks: fast needs a mask head for this SMPN; {reason}; use full or auto")
        rois = self.slicing.roi_names
        if masks == "full" or not usable:
            return None, frozenset(), f" ({threshold_note})" if threshold_note and masks == "auto" else ""
        why = ""
        if masks == "auto":
            measured = head.matte_iou or {}
            rois = tuple(roi for roi in rois if measured.get(roi, -1.0) >= min_iou)
            if len(rois) < len(self.slicing.roi_names):
                iou = ", ".join(f"{roi} {value:.3f}" for roi, value in measured.items()) or "not measured"
                why = (
                    f" (the head's matte IoU against the full masks on validation faces: {iou}; needed >= "
                    f"{min_iou:g}: editor.fast_mask_min_iou; editor.masks=fast reads all)"
                )
            if not rois:
                return None, frozenset(), why
        device = next(smpn.parameters()).device
        return copy.deepcopy(head).float().eval().requires_grad_(False).to(device), frozenset(rois), why

    @property
    def mask_reading(self) -> str:
        """Which regions the mask head reads: "fast" (every one), "full" (none) or "mixed" (``fast_rois``)."""
        if not self.fast_rois:
            return "full"
        return "fast" if self.fast_rois == set(self.slicing.roi_names) else "mixed"

    def mask_reading_text(self) -> str:
        """How each region's masks are read, for reports: by the mask head (and its block) or in full."""
        rois = self.slicing.roi_names
        fast, full = [roi for roi in rois if roi in self.fast_rois], [roi for roi in rois if roi not in self.fast_rois]
        parts = []
        if fast:
            parts.append(f"{', '.join(fast)}: mask head on {self.mask_head.block}")
        if full:
            parts.append(f"{', '.join(full)}: full-resolution region decodes")
        return "; ".join(parts)

    @classmethod
    def from_checkpoints(
        cls,
        smn_path: str | os.PathLike,
        smpn_path: str | os.PathLike,
        slicing: SliceScheme | Mapping | None = None,
        *,
        device: str | torch.device = "cpu",
        **options,
    ) -> L2SAEEditor:
        """Load both networks (our ``save_sae`` format or an official SAE checkpoint).

        The slicing, the image size and the mask threshold default to those recorded in the SMPN checkpoint's
        ``extra`` (the threshold its validation read masks with), and so does the mask head (``mask_head``, used
        as ``masks`` says); recorded values are checked and errors name the file. ``options`` are the keyword arguments of the constructor; an option given as None takes the
        recorded value. An official SAE file without discriminator weights does not record its image size:
        give ``image_size`` (``editor.image_size=N`` on the command line). A file recorded as the other
        network (an SMPN given as the SMN, or the reverse) is refused.
        """
        check_checkpoint_files(smn_path, smpn_path)
        extra = read_extra(smpn_path)
        for name, path, kind in (("smn", smn_path, "smn"), ("smpn", smpn_path, "smpn")):
            recorded = (extra if path == smpn_path else read_extra(path)).get("kind", kind)
            if recorded != kind:
                raise ConfigError(
                    f"ckpt.{name}: {path} is an {recorded.upper()} (its recorded kind); give the {name.upper()} "
                    f"file here (a training run writes smn.pt and smpn.pt)"
                )
        if slicing is None:
            if "slicing" not in extra:
                raise ConfigError(
                    f"slicing: {smpn_path} records no slicing scheme; pass the scheme the SMPN was trained with"
                )
            slicing = SliceScheme.from_dict(extra["slicing"], key=f"{smpn_path}:slicing")
        if options.get("mask_threshold") is None and "mask_threshold" in extra:
            options["mask_threshold"] = check_mask_threshold(extra["mask_threshold"], f"{smpn_path}: mask_threshold")
        if options.get("mask_head") is None and "mask_head" in extra:
            try:
                options["mask_head"] = MaskHead.from_dict(extra["mask_head"], key=f"{smpn_path}: mask_head")
            except ValueError as error:
                raise ConfigError(str(error)) from error
        smn = load_for_inference(smn_path, device, options.get("image_size") or extra.get("image_size"))
        smpn = load_for_inference(smpn_path, device, options.get("image_size") or extra.get("image_size"))
        if options.get("image_size") is None and "image_size" in extra:
            options["image_size"] = check_image_size(extra["image_size"], (smn, smpn), f"{smpn_path}: image_size")
        return cls(smn, smpn, slicing, **options)

    def _reads_like(self, other: L2SAEEditor) -> bool:
        """Whether ``other``'s codes and cached masks are this editor's: the same networks, precision, slicing and
        mask settings."""
        return other is self or (
            other.networks_given == self.networks_given
            and other.dtype == self.dtype
            and other.slicing.to_dict() == self.slicing.to_dict()
            and (other.mask_threshold, other.soft_masks) == (self.mask_threshold, self.soft_masks)
            and other.fast_rois == self.fast_rois
        )

    @property
    def device(self) -> torch.device:
        return next(self.smn.parameters()).device

    def _encode(self, network: SwappingAutoencoder, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 codes of images B x 3 x H x W (the networks run in the editor's dtype)."""
        structure, texture = network.encode(images.to(self.device, self.dtype))
        return structure.float(), texture.float()

    def _layout(self) -> torch.memory_format:
        """Memory layout of the decoders' inputs (channels-last speeds the generator up on CPU)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _decode(self, network: SwappingAutoencoder, structure: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        """Decoded images B x 3 x H x W, float32, clamped to [-1, 1]."""
        structure = structure.to(self.dtype).contiguous(memory_format=self._layout())
        images = network.decode(structure, texture.to(self.dtype))
        return images.float().clamp(-1.0, 1.0).contiguous()

    def _decode_inside(
        self,
        network: SwappingAutoencoder,
        structure: torch.Tensor,
        texture: torch.Tensor,
        faces: EncodedFaces,
        matte: torch.Tensor,
    ) -> tuple[torch.Tensor, Box | None]:
        """The decode where ``matte`` (B x 1 x H x W) is positive, the input elsewhere, and the box decoded
        (None: the whole image; see ``window``)."""
        box = decode_box(matte, self.window_max_fraction) if self.window else None
        if box is None:
            return self._decode(network, structure, texture), None
        if box.area == 0:
            return faces.images.clone(), box
        structure = structure.to(self.dtype).contiguous(memory_format=self._layout())
        pixels = decode_window(network.G, structure, texture.to(self.dtype), box)
        return paste(faces.images, pixels.float().clamp(-1.0, 1.0), box), box

    @torch.inference_mode()
    def encode(self, images: torch.Tensor, rois: str | Sequence[str] = ()) -> EncodedFaces:
        """Encode images (B x 3 x H x W in [-1, 1]) with both networks; read the masks of ``rois`` now
        (one batched decode) so later edits of those regions need no SMPN decode."""
        _check_images(images, "images")
        images = images.to(self.device, torch.float32)
        smn_structure, smn_texture = self._encode(self.smn, images)
        smpn_structure, smpn_texture = self._encode(self.smpn, images)
        faces = EncodedFaces(images, smn_structure, smn_texture, smpn_structure, smpn_texture, editor=self)
        if rois:
            self._read_masks(faces, self.slicing.validate_rois(rois))
        return faces

    def _faces(self, faces: Faces, name: str = "images") -> EncodedFaces:
        if isinstance(faces, EncodedFaces):
            if faces.editor is not None and not self._reads_like(faces.editor):
                raise ValueError(
                    f"{name}: these EncodedFaces were encoded by another L2SAEEditor, with other networks, precision "
                    f"or mask settings (their codes and cached masks are its); encode the images with this editor"
                )
            return faces
        _check_images(faces, name)
        return self.encode(faces)

    def _read_masks(self, faces: EncodedFaces, rois: tuple[str, ...]) -> torch.Tensor:
        """B x R x H x W masks; regions not read yet are decoded by the SMPN in one batch per reading: up to the
        mask head's block for ``fast_rois``, in full for the others."""
        missing = [roi for roi in rois if roi not in faces.region_masks]
        if missing:
            structure = faces.smpn_structure.to(self.dtype).contiguous(memory_format=self._layout())
            texture = faces.smpn_texture.to(self.dtype)
            fast = [roi for roi in missing if roi in self.fast_rois]
            full = [roi for roi in missing if roi not in self.fast_rois]
            if fast:
                channel_masks = self.slicing.channel_masks(fast).to(self.device)  # R x C
                logits = region_mask_logits(self.smpn, self.mask_head, structure, texture, channel_masks)
                masks = masks_from_logits(logits, faces.images.shape[-2:], soft=self.soft_masks)
                faces.region_masks.update(zip(fast, masks.unbind(dim=1)))
            if full:
                channel_masks = self.slicing.channel_masks(full).to(self.device)
                decodes = self.smpn.decode_sliced(structure, texture, channel_masks).float().clamp(-1.0, 1.0)
                masks = masks_from_region_decodes(decodes, threshold=self.mask_threshold, soft=self.soft_masks)
                faces.region_masks.update(zip(full, masks.unbind(dim=1)))
        return torch.stack([faces.region_masks[roi] for roi in rois], dim=1)

    def _region(self, faces: EncodedFaces, rois: tuple[str, ...]) -> torch.Tensor:
        """The union of the regions' masks, B x 1 x H x W."""
        return self._read_masks(faces, rois).amax(dim=1, keepdim=True)

    def _composite(self, faces: EncodedFaces, global_edit: torch.Tensor, matte: torch.Tensor) -> EditResult:
        images = self.matting.blend(faces.images, global_edit, matte)
        return EditResult(images=images.clamp(-1.0, 1.0), matte=matte, global_edit=global_edit)

    @torch.inference_mode()
    def masks(self, images: Faces, rois: str | Sequence[str]) -> torch.Tensor:
        """Region masks B x R x H x W in [0, 1] ({0, 1} unless soft_masks), in the order of ``rois``."""
        rois = self.slicing.validate_rois(rois)
        return self._read_masks(self._faces(images), rois)

    def _restyle(self, faces: EncodedFaces, strength: float, seed: int | None, matte: torch.Tensor) -> torch.Tensor:
        """Algorithm 1's global edit: the SMN decode with the texture moved along the seed's direction,
        where ``matte`` (B x 1 x H x W) needs it.

        Remembered in ``faces`` per style change: the texture offset's length (strength x style_sigma, so an
        editor with another style_sigma never takes this one's decode) and the seed. Further regions with the
        same style change cost no decode when the remembered decode covers their matte; a seed of None draws a
        fresh direction and is not remembered.
        """
        offset = float(strength) * self.style_sigma
        key = (offset, seed)
        if seed is not None and key in faces.global_edits:
            needed = decode_box(matte, self.window_max_fraction) if self.window else None
            if contains(faces.global_edit_boxes.get(key), needed):
                return faces.global_edits[key]
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        texture = faces.smn_texture
        direction = normalize(torch.randn(1, texture.shape[1], generator=generator)).to(texture.device)
        texture = normalize(texture + offset * direction)
        global_edit, box = self._decode_inside(self.smn, faces.smn_structure, texture, faces, matte)
        if seed is not None:
            faces.global_edits.pop(key, None)
            if len(faces.global_edits) >= GLOBAL_EDITS_REMEMBERED:
                oldest = next(iter(faces.global_edits))
                del faces.global_edits[oldest], faces.global_edit_boxes[oldest]
            faces.global_edits[key], faces.global_edit_boxes[key] = global_edit, box
        return global_edit

    @torch.inference_mode()
    def edit_style(
        self, images: Faces, roi: str | Sequence[str], strength: float = 1.0, seed: int | None = None
    ) -> EditResult:
        """Restyle the region(s) ``roi`` (Algorithms 1 and 2).

        One random texture direction, drawn from ``seed`` (None: a fresh random seed), is shared by the
        whole batch, so a seed names a style change and the same seed gives the same edit. A strength
        of 0 is the identity: the images come back unchanged and the matte is zero.
        """
        rois = self.slicing.validate_rois(roi)
        strength, seed = check_strength(strength), check_seed(seed)
        faces = self._faces(images)
        region = self._region(faces, rois) if strength != 0 else torch.zeros_like(faces.images[:, :1])
        matte = self.matting.matte(region)
        return self._composite(faces, self._restyle(faces, strength, seed, matte), matte)

    @torch.inference_mode()
    def swap_style(self, images: Faces, reference: Faces, rois: str | Sequence[str]) -> EditResult:
        """The region(s) take the texture (style) of ``reference`` (a batch of 1 or B faces of any size)."""
        rois = self.slicing.validate_rois(rois)
        faces = self._faces(images)
        if isinstance(reference, EncodedFaces):
            reference_texture = self._faces(reference, "reference").smn_texture
        else:
            _check_images(reference, "reference")
            reference_texture = self._encode(self.smn, reference)[1]
        texture = _broadcast(reference_texture, len(faces), "reference")
        matte = self.matting.matte(self._region(faces, rois))
        global_edit, _ = self._decode_inside(self.smn, faces.smn_structure, texture, faces, matte)
        return self._composite(faces, global_edit, matte)

    @torch.inference_mode()
    def swap_structure(
        self, images: Faces, donor: Faces, rois: str | Sequence[str], design: str | None = None
    ) -> EditResult:
        """The region(s) take their structure channels from ``donor`` (a batch of 1 or B same-size faces).

        The SMPN's slicing says which channels belong to a region. ``design`` (None: the editor's
        ``structure_swap``) says whose code is spliced and decoded and which matte composites it; see
        :mod:`l2sae.editing.swap_designs`. ``global_edit`` is the decode of the spliced code.
        """
        design = STRUCTURE_SWAP_DESIGNS[
            self.structure_swap if design is None else SwapDesignName.parse(design, "design")
        ]
        rois = self.slicing.validate_rois(rois)
        smn_channels = self.smn.config.structure_channels
        if design.decoder == "smn" and smn_channels != self.slicing.num_channels:
            raise ConfigError(
                f"{self.slicing.key}.num_channels: structure swaps through the SMN need an SMN with the slicing's "
                f"{self.slicing.num_channels} structure channels, this SMN has {smn_channels}"
            )
        for given, name in ((images, "images"), (donor, "donor")):
            if not isinstance(given, EncodedFaces):
                _check_images(given, name)
        size, donor_size = _image_size(images), _image_size(donor)
        if donor_size != size:
            raise ValueError(f"donor: size {donor_size} differs from the images' {size}; give a donor of the same size")
        faces = self._faces(images)
        donor = self._faces(donor, "donor")
        batch = len(faces)
        channels = self.slicing.channel_masks(rois).amax(dim=0).to(self.device)
        smpn_structure = splice(faces.smpn_structure, _broadcast(donor.smpn_structure, batch, "donor"), channels)
        if design.decoder == "smn":
            structure = splice(faces.smn_structure, _broadcast(donor.smn_structure, batch, "donor"), channels)
            global_edit = self._decode(self.smn, structure, faces.smn_texture)
        else:
            global_edit = self._decode(self.smpn, smpn_structure, faces.smpn_texture)
        if design.matte == "donor":
            other = _broadcast(self._region(donor, rois), batch, "donor")
        else:  # the region where the spliced SMPN code puts it
            swapped = EncodedFaces(
                faces.images, faces.smn_structure, faces.smn_texture, smpn_structure, faces.smpn_texture, editor=self
            )
            other = self._region(swapped, rois)
        return self._composite(faces, global_edit, self.matting.matte(torch.maximum(self._region(faces, rois), other)))

    def prepare_photo(
        self, photo: photo_editing.Photo, align: str = "auto", faces: str | int = "all", rois=(), **options
    ) -> photo_editing.PreparedPhoto:
        """Find, align and encode the faces of a photo (path, PIL image or H x W x 3 uint8 array) once;
        see :func:`l2sae.editing.photo.prepare_photo`."""
        return photo_editing.prepare_photo(self, photo, align, faces, rois, **options)

    def edit_photo(
        self, photo: photo_editing.Photo | photo_editing.PreparedPhoto, roi: str | Sequence[str], **options
    ) -> photo_editing.PhotoEditResult:
        """Edit every chosen face of a photo and paste the edits back at full resolution; returns a
        :class:`l2sae.editing.photo.PhotoEditResult` (see :func:`l2sae.editing.photo.edit_photo` for options)."""
        return photo_editing.edit_photo(self, photo, roi, **options)
