"""The Swapping Autoencoder (Park et al. 2020): config dataclass, presets and the model.

State-dict keys are the official ones (``E.``, ``G.``, ``D.stylegan2_D.``, ``Dpatch.``,
``num_discriminator_iters``), so official checkpoints load as they are (see checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .discriminator import Discriminator
from .encoder import Encoder
from .generator import Generator
from .layers import NoiseInjection, NoiseMode
from .ops import normalize
from .patch_discriminator import PatchDiscriminator

# official option name -> SAEConfig field (netG_resnet_ch is parsed by the official code but unused)
OFFICIAL_OPTION_NAMES = {
    "crop_size": "crop_size",
    "spatial_code_ch": "structure_channels",
    "global_code_ch": "texture_channels",
    "netE_scale_capacity": "encoder_capacity",
    "netE_nc_steepness": "encoder_steepness",
    "netE_num_downsampling_sp": "encoder_downsamplings_structure",
    "netE_num_downsampling_gl": "encoder_downsamplings_texture",
    "netG_scale_capacity": "generator_capacity",
    "netG_num_base_resnet_layers": "generator_head_blocks",
    "netG_use_noise": "generator_noise",
    "netD_scale_capacity": "discriminator_capacity",
    "netPatchD_scale_capacity": "patch_discriminator_capacity",
    "netPatchD_max_nc": "patch_discriminator_max_channels",
    "patch_size": "patch_size",
    "use_antialias": "antialias",
    "num_classes": "num_classes",
}


def encoder_schedule(capacity: float, steepness: float, texture_channels: int, n: int) -> list[int]:
    """Official encoder widths ``min(C_t, round(steepness^(5+i) * capacity))``, i < n (Python round)."""
    return [min(texture_channels, round(steepness ** (5 + i) * capacity)) for i in range(n)]


@dataclass(frozen=True)
class SAEConfig:
    """Every architecture option of the SAE. Defaults are the official defaults (= ``ffhq256``).

    crop_size: training image side; E and G accept any side the encoder can divide, the image
        discriminator is built for this one (non powers of two such as 768 are allowed).
    structure_channels / texture_channels: widths of the structure code (B x C_s x H/2^k x W/2^k)
        and of the texture code (B x C_t) (official ``spatial_code_ch`` / ``global_code_ch``).
    encoder_capacity, encoder_steepness: encoder widths ``min(C_t, round(steepness^(5+i) * capacity))``;
        ignored when ``encoder_channels`` lists the widths explicitly (length k + texture downsamplings + 1).
    encoder_downsamplings_structure (k), encoder_downsamplings_texture: number of x2 reductions to the
        structure code, then of unpadded stride-2 3x3 convs to the texture code.
    generator_capacity, generator_head_blocks, generator_noise: ``netG_scale_capacity``,
        ``netG_num_base_resnet_layers``, ``netG_use_noise`` (noise in the upsampling blocks).
    discriminator_capacity, patch_discriminator_capacity, patch_discriminator_max_channels, patch_size:
        discriminator widths and the co-occurrence patch side.
    discriminator_max_channels, patch_discriminator_pair_width: not official options; their defaults are the
        official constants (the image discriminator's width cap, 512, which its 4 and 8 px layers always have;
        the pair classifier's width, 2048). The ``tiny`` preset lowers them: at 512 / 2048 its discriminators
        would hold 18.9M of its 19.2M parameters (0.6M of 0.9M as set).
    antialias: FIR blur kernels (``[1,2,1]`` in E, ``[1,3,3,1]`` elsewhere) instead of ``[1]``.
    num_classes: must be 0 (class-conditional SAEs are not supported).
    """

    crop_size: int = 256
    structure_channels: int = 8
    texture_channels: int = 2048
    encoder_capacity: float = 1.0
    encoder_steepness: float = 2.0
    encoder_downsamplings_structure: int = 4
    encoder_downsamplings_texture: int = 2
    encoder_channels: tuple[int, ...] | None = None
    generator_capacity: float = 1.0
    generator_head_blocks: int = 2
    generator_noise: bool = True
    discriminator_capacity: float = 1.0
    patch_discriminator_capacity: float = 4.0
    patch_discriminator_max_channels: int = 384
    patch_size: int = 128
    antialias: bool = True
    num_classes: int = 0
    discriminator_max_channels: int = 512
    patch_discriminator_pair_width: int = 2048

    def __post_init__(self) -> None:
        if self.encoder_channels is not None:
            object.__setattr__(self, "encoder_channels", tuple(int(c) for c in self.encoder_channels))
        self._validate()

    # ---- construction -------------------------------------------------------------------------
    @staticmethod
    def preset(name: str, **overrides: Any) -> SAEConfig:
        """``tiny`` (64 px, CPU tests; the sae_tiny fixture with smaller discriminators), ``ffhq256``, ``ffhq512``,
        ``ffhq1024``."""
        if name not in PRESETS:
            raise ValueError(f"backbone preset: unknown name {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @classmethod
    def from_official_options(cls, options: Mapping[str, Any]) -> SAEConfig:
        """Build from official option names (unknown names ignored, missing ones take the defaults)."""
        return cls(**{ours: options[theirs] for theirs, ours in OFFICIAL_OPTION_NAMES.items() if theirs in options})

    def to_official_options(self) -> dict[str, Any]:
        """The official option names and values (without ``encoder_channels``)."""
        return {theirs: getattr(self, ours) for theirs, ours in OFFICIAL_OPTION_NAMES.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain python (ints, floats, bools, lists, None): safe for ``torch.load(weights_only=True)``."""
        d = dataclasses.asdict(self)
        if d["encoder_channels"] is not None:
            d["encoder_channels"] = list(d["encoder_channels"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], key: str = "config") -> SAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{key}: unknown SAEConfig field(s) {unknown}; known fields: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_backbone(cls, d: Mapping[str, Any], key: str = "backbone") -> SAEConfig:
        """From a ``conf/backbone/*.yaml`` mapping: SAEConfig fields, optionally ``preset: NAME``
        (the other fields then override it); a ``checkpoint`` entry is ignored here."""
        fields = {k: v for k, v in d.items() if k not in ("preset", "checkpoint")}
        try:
            base = cls.preset(d["preset"]).to_dict() if d.get("preset") else {}
            return cls.from_dict({**base, **fields}, key=key)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{key}: {err}") from err

    # ---- derived widths -----------------------------------------------------------------------
    @property
    def style_dim(self) -> int:
        return self.texture_channels + self.num_classes

    def encoder_widths(self) -> list[int]:
        """Encoder width after each stage: k + texture downsamplings + 1 numbers."""
        if self.encoder_channels is not None:
            return list(self.encoder_channels)
        n = self.encoder_downsamplings_structure + self.encoder_downsamplings_texture + 1
        return encoder_schedule(self.encoder_capacity, self.encoder_steepness, self.texture_channels, n)

    def generator_widths(self) -> list[int]:
        """``nf(u) = int(min(512, 128 * 2^(k - u)) * capacity)`` for u = 0..k."""
        k = self.encoder_downsamplings_structure
        return [int(min(512, 128 * 2 ** (k - u)) * self.generator_capacity) for u in range(k + 1)]

    def generator_head_widths(self) -> list[int]:
        n, top = self.generator_head_blocks, self.generator_widths()[0]
        return [max(self.structure_channels, round((i + 1) / n * top)) for i in range(n)]

    def check_image_size(self, height: int, width: int, key: str = "crop_size") -> None:
        """Raise ValueError (naming ``key``) unless the encoder can reduce an H x W image."""
        k, gl = self.encoder_downsamplings_structure, self.encoder_downsamplings_texture
        for side in (height, width):
            if side % 2**k:
                raise ValueError(
                    f"{key}: image side {side} is not divisible by 2^{k} (encoder_downsamplings_structure={k})"
                )
            s = side // 2**k
            for _ in range(gl):
                if s < 3:
                    raise ValueError(
                        f"{key}: image side {side} is too small: the structure code is {side // 2**k} px and "
                        f"{gl} unpadded 3x3 stride-2 texture convs need at least 3 px at each step"
                    )
                s = (s - 3) // 2 + 1

    def _validate(self) -> None:
        positive = (
            "crop_size",
            "structure_channels",
            "texture_channels",
            "encoder_downsamplings_structure",
            "generator_head_blocks",
            "patch_size",
            "patch_discriminator_max_channels",
            "discriminator_max_channels",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in (
            "encoder_capacity",
            "encoder_steepness",
            "generator_capacity",
            "discriminator_capacity",
            "patch_discriminator_capacity",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        if self.num_classes != 0:
            raise ValueError(f"num_classes: class-conditional SAEs are not supported (got {self.num_classes}); use 0")
        self.check_image_size(self.crop_size, self.crop_size)
        if self.encoder_channels is not None:
            expected = self.encoder_downsamplings_structure + self.encoder_downsamplings_texture + 1
            if len(self.encoder_channels) != expected or min(self.encoder_channels) < 1:
                raise ValueError(
                    f"encoder_channels: expected {expected} positive widths, got {list(self.encoder_channels)}"
                )
        if min(self.encoder_widths() + self.generator_widths()) < 1:
            raise ValueError("encoder_capacity / generator_capacity: too small, a layer would have 0 channels")
        log_d = round(math.log2(self.crop_size))
        if not 3 <= log_d <= 10 or self.crop_size % 2 ** (log_d - 2):
            raise ValueError(
                f"crop_size: the image discriminator needs 8 <= crop_size < 1449 divisible by 2^(round(log2 crop_size) - 2); got {self.crop_size}"
            )
        log_p = math.log2(self.patch_size)
        if log_p != int(log_p) or not 3 <= log_p <= 8:
            raise ValueError(f"patch_size: must be a power of two between 8 and 256, got {self.patch_size}")
        if self.patch_discriminator_pair_width < 2:
            raise ValueError(
                f"patch_discriminator_pair_width: must be >= 2, got {self.patch_discriminator_pair_width!r}"
            )
        if int(256 * self.patch_discriminator_capacity) < self.patch_discriminator_max_channels:
            raise ValueError(
                "patch_discriminator_capacity: 256 * capacity must reach patch_discriminator_max_channels "
                f"(the 4x4 features feed the pair classifier); got {self.patch_discriminator_capacity} and {self.patch_discriminator_max_channels}"
            )


PRESETS: dict[str, SAEConfig] = {
    "tiny": SAEConfig(
        crop_size=64,
        structure_channels=8,
        texture_channels=64,
        encoder_capacity=0.375,
        encoder_downsamplings_structure=3,
        generator_capacity=0.1,
        discriminator_capacity=0.0625,
        patch_discriminator_capacity=0.25,
        patch_discriminator_max_channels=32,
        patch_size=32,
        discriminator_max_channels=64,
        patch_discriminator_pair_width=256,
    ),
    "ffhq256": SAEConfig(crop_size=256),
    "ffhq512": SAEConfig(crop_size=512),
    # crop 768 is the training crop of the official 1024 model (it fixes D's final linear layer);
    # E and G run on 1024 x 1024 images.
    "ffhq1024": SAEConfig(
        crop_size=768,
        texture_channels=1536,
        encoder_capacity=0.4,
        encoder_downsamplings_structure=5,
        generator_capacity=0.8,
        patch_size=256,
    ),
}


def pairwise_swap(x: Tensor) -> Tensor:
    """Exchange consecutive pairs along dim 0 (0<->1, 2<->3, ...). Batch size must be even."""
    if x.shape[0] % 2:
        raise ValueError(f"pairwise_swap needs an even batch, got {x.shape[0]}")
    return x.view(x.shape[0] // 2, 2, *x.shape[1:]).flip(1).reshape(x.shape)


class SwappingAutoencoder(nn.Module):
    """Encoder ``E``, generator ``G`` and (optionally) discriminators ``D`` / ``Dpatch``.

    Readable aliases: ``encoder``, ``generator``, ``discriminator`` (images -> B x 1 logits),
    ``patch_discriminator`` (``extract_features`` / ``discriminate_features``); the last two are
    None when built with ``with_discriminators=False``. Images are B x 3 x H x W in [-1, 1].
    """

    def __init__(self, config: SAEConfig, with_discriminators: bool = True):
        super().__init__()
        c = self.config = config
        self.E = Encoder(
            c.encoder_widths(),
            c.structure_channels,
            c.texture_channels,
            c.encoder_downsamplings_structure,
            c.encoder_downsamplings_texture,
            c.antialias,
        )
        self.G = Generator(
            c.structure_channels,
            c.style_dim,
            c.generator_head_widths(),
            c.generator_widths()[1:],
            c.antialias,
            c.generator_noise,
        )
        if with_discriminators:
            self.D = nn.Module()
            self.D.stylegan2_D = Discriminator(
                c.crop_size, c.discriminator_capacity, c.antialias, c.discriminator_max_channels
            )
            self.Dpatch = PatchDiscriminator(
                c.patch_size,
                c.patch_discriminator_capacity,
                c.patch_discriminator_max_channels,
                c.antialias,
                c.patch_discriminator_pair_width,
            )
        else:
            self.D = self.Dpatch = None
        self.register_buffer("num_discriminator_iters", torch.zeros(1, dtype=torch.long))

    @property
    def encoder(self) -> Encoder:
        return self.E

    @property
    def generator(self) -> Generator:
        return self.G

    @property
    def discriminator(self) -> Discriminator | None:
        return None if self.D is None else self.D.stylegan2_D

    @property
    def patch_discriminator(self) -> PatchDiscriminator | None:
        return self.Dpatch

    @property
    def has_discriminators(self) -> bool:
        return self.D is not None

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images B x 3 x H x W -> (structure B x C_s x H/2^k x W/2^k, texture B x C_t), L2-normalised."""
        self.config.check_image_size(images.shape[-2], images.shape[-1], key="images")
        return self.E(images)

    def decode(self, structure: Tensor, texture: Tensor) -> Tensor:
        """(structure B x C_s x h x w, texture B x C_t) -> images B x 3 x h 2^k x w 2^k, unbounded."""
        return self.G(structure, texture)

    def decode_sliced(
        self, structure: Tensor, texture: Tensor, channel_masks: Tensor, until: str | None = None
    ) -> Tensor:
        """Decode each ROI's slice of the structure code, all B x R decodes in one generator call.

        structure B x C_s x h x w, texture B x C_t, channel_masks R x C_s in {0, 1} (a row per ROI)
        -> images B x R x 3 x H x W. The structure is L2-normalised *before* the channels outside the
        slice are zeroed, and the generator's own normalisation is skipped: normalising a sliced code
        would blow each slice up to unit length at every pixel (a one-channel slice would become its
        sign, with zero gradient), erasing where the ROI is. Without slicing this equals ``decode``.
        ``until``: a generator block; the decode stops after it and returns its features B x R x C x h' x w'
        (:meth:`Generator.features`: no later block runs).
        """
        batch, regions = structure.shape[0], channel_masks.shape[0]
        masks = channel_masks.to(structure)[None, :, :, None, None]
        sliced = (normalize(structure).unsqueeze(1) * masks).flatten(0, 1)
        if structure.dim() == 4 and structure.is_contiguous(memory_format=torch.channels_last):
            sliced = sliced.contiguous(memory_format=torch.channels_last)  # keep the caller's layout
        texture = texture.repeat_interleave(regions, dim=0)
        if until is None:
            decodes = self.G(sliced, texture, normalize_structure=False)
        else:
            decodes = self.G.features(sliced, texture, normalize_structure=False, until=until)
        return decodes.unflatten(0, (batch, regions))

    def swap(self, structure: Tensor, texture: Tensor) -> Tensor:
        """Decode image i's structure with the texture of its pair partner (0<->1, 2<->3, ...)."""
        return self.G(structure, pairwise_swap(texture))

    def forward(self, images: Tensor) -> Tensor:
        """Reconstruction: ``decode(*encode(images))``."""
        return self.decode(*self.encode(images))

    def set_noise(self, mode: str) -> SwappingAutoencoder:
        """``"random"``: fresh N(0,1) noise per call (training); ``"zero"``: deterministic decoder."""
        mode = NoiseMode.parse(mode, "noise mode")
        for module in self.G.modules():
            if isinstance(module, NoiseInjection):
                module.mode = mode
        return self
