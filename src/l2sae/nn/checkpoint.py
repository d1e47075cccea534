"""Load and save Swapping Autoencoder checkpoints.

Two formats are read (always with ``torch.load(..., weights_only=True)``):

- official: ``torch.save(model.state_dict())`` of the official model (``latest_checkpoint.pth``),
  one flat dict with ``E.``, ``G.``, ``D.``, ``Dpatch.`` keys and ``num_discriminator_iters``;
  it carries no options, so the architecture is inferred from the tensor shapes;
- ours (``save_sae``): ``{"format": "l2sae-sae/1", "config": dict, "state_dict": ..., "extra": dict}``.

A file that does not fit the architecture raises :class:`CheckpointError` naming the file and
listing the first missing / unexpected / mis-shaped keys; nothing is loaded half-way.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from l2sae.utils.files import atomic_path
from l2sae.utils.pretrained import load_failure

from .discriminator import DISCRIMINATOR_WIDTHS, discriminator_block_name
from .patch_discriminator import PATCH_WIDTHS, patch_block_name
from .sae import SAEConfig, SwappingAutoencoder, encoder_schedule

FORMAT = "l2sae-sae/1"
DISCRIMINATOR_PREFIXES = ("D.", "Dpatch.")
_LIST_LIMIT = 5


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the requested architecture."""


class UnknownImageSizeError(CheckpointError):
    """An official SAE file without ``D.`` weights: the image size (``crop_size``) must be given."""


# ---- saving ------------------------------------------------------------------------------------
def save_sae(
    model: SwappingAutoencoder,
    path: str | os.PathLike,
    extra: Mapping[str, Any] | None = None,
    with_discriminators: bool = True,
) -> Path:
    """Write ``model`` (its config and weights) atomically to ``path``; returns the path.

    ``extra``: plain python data stored beside the weights (e.g. ``{"slicing": ..., "kind": "smpn"}``).
    ``with_discriminators=False`` leaves out the ``D.`` / ``Dpatch.`` weights (inference files).
    """
    state = {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if with_discriminators or not k.startswith(DISCRIMINATOR_PREFIXES)
    }
    payload = {"format": FORMAT, "config": model.config.to_dict(), "state_dict": state, "extra": dict(extra or {})}
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


# ---- reading -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Contents:
    state_dict: dict[str, Tensor]
    config: dict[str, Any] | None
    extra: dict[str, Any]


def _read(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> _Contents:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder; give the SAE checkpoint file in it (a .pt or .pth file, e.g. smn.pt)."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"SAE checkpoint {path} does not exist. Pass an official SAE file (e.g. "
            "checkpoints/ffhq512_pretrained/latest_checkpoint.pth) or one written by save_sae (e.g. <run>/smn.pt)."
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:  # a pickled nn.Module, a class, code: never unpickled
        raise CheckpointError(
            f"{load_failure(path, err)}. Save the network's weights instead: save_sae(model, path) (or "
            "torch.save(model.state_dict(), path) for an official-format file)."
        ) from err
    except Exception as err:  # empty or truncated zip, not a torch file: "not a readable checkpoint"
        raise CheckpointError(
            f"{load_failure(path, err)}. The file may be truncated or corrupt: download or export it again."
        ) from err
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        return _saved_contents(obj, path)
    if isinstance(obj, Mapping) and "format" in obj:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {obj['format']!r}; this version reads {FORMAT!r} and official SAE files."
        )
    if isinstance(obj, Mapping) and "pytorch-lightning_version" in obj:
        raise CheckpointError(
            f"{path}: this is a Lightning training checkpoint, not an SAE file; load the networks exported beside it (smn.pt / smpn.pt)."
        )
    if (
        isinstance(obj, Mapping)
        and any(isinstance(k, str) and k.startswith("E.") for k in obj)
        and all(isinstance(v, Tensor) for v in obj.values())
    ):
        return _Contents(dict(obj), None, {})
    keys = list(obj)[:_LIST_LIMIT] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{path}: not a Swapping Autoencoder checkpoint (found {keys}); expected an official SAE state dict (E./G. keys) or a {FORMAT!r} file from save_sae."
    )


def _saved_contents(obj: Mapping[str, Any], path: Path) -> _Contents:
    """The parts of a :func:`save_sae` dict, their types checked: state_dict (name -> tensor), config and extra
    (dicts; extra may be absent)."""
    parts = {}
    for part in ("state_dict", "config", "extra"):
        value = obj.get(part)
        if part == "extra" and value is None:
            value = {}
        if not isinstance(value, Mapping):
            found = f"of type {type(value).__name__}" if part in obj else "missing"
            raise CheckpointError(
                f"{path}: a {FORMAT!r} file whose {part!r} is {found}, not a dict; the file is damaged or was not "
                "written by save_sae: export it again."
            )
        parts[part] = dict(value)
    for name, value in parts["state_dict"].items():
        if not (isinstance(name, str) and isinstance(value, Tensor)):
            raise CheckpointError(
                f"{path}: 'state_dict' entry {name!r} is of type {type(value).__name__}, not a named tensor; the file is "
                "damaged or was not written by save_sae: export it again."
            )
    return _Contents(parts["state_dict"], parts["config"], parts["extra"])


def read_extra(path: str | os.PathLike) -> dict[str, Any]:
    """The ``extra`` dict stored by :func:`save_sae` (empty for official files); the weights are only mapped."""
    return _read(path, mmap=True).extra


def paired_smn(start: str | os.PathLike) -> Path | None:
    """The SMN to edit with an SMPN that was trained from the SAE file ``start``: ``start`` itself when it is an
    SMN (an ``smn.pt`` or an official file), the ``smn.pt`` beside it when it is an SMPN (a head distilled again,
    a training continued), None when that does not exist. Links are followed (``logs/latest/smn.pt``)."""
    start = Path(start).resolve()
    if read_extra(start).get("kind") != "smpn":
        return start
    beside = (start.parent / "smn.pt").resolve()
    return beside if beside.is_file() else None


def discriminator_crop_size(path: str | os.PathLike) -> int | None:
    """The image side (``crop_size``) the file's image discriminator is built for; None without ``D.`` weights.

    Reads the stored config or, for an official file, the ``D.`` / ``Dpatch.`` shapes (weights only mapped).
    """
    contents = _read(path, mmap=True)
    if not any(key.startswith("D.") for key in contents.state_dict):
        return None
    if contents.config is not None:
        return int(contents.config.get("crop_size", SAEConfig().crop_size))  # as load_sae builds it
    shapes = {key: _shape(value) for key, value in contents.state_dict.items()}
    try:
        return _infer_discriminators(shapes, SAEConfig())["crop_size"]
    except (KeyError, ValueError):  # incomplete D weights: loading the file says so
        return None


def load_sae(
    path: str | os.PathLike,
    config: SAEConfig | Mapping[str, Any] | None = None,
    map_location: Any = "cpu",
    with_discriminators: bool | None = None,
) -> SwappingAutoencoder:
    """Load an official SAE checkpoint or a :func:`save_sae` file.

    config: None (read from the file, or inferred from the tensor shapes of an official file),
        a full :class:`SAEConfig`, or a dict of SAEConfig fields that override the file's /
        the inferred values (e.g. ``{"crop_size": 512}`` for an official file without ``D.`` keys).
    with_discriminators: None builds ``D`` / ``Dpatch`` when the file has their weights; False
        skips them (inference); True requires them.
    The model is returned in train mode with random noise, like a freshly built one.
    """
    contents = _read(path, map_location)
    state = contents.state_dict
    if isinstance(config, SAEConfig):
        cfg = config
    elif contents.config is not None:
        try:
            cfg = SAEConfig.from_dict({**contents.config, **(config or {})})
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
    else:
        cfg = infer_config(state, overrides=config, source=str(path))
    if with_discriminators is None:
        with_discriminators = any(k.startswith(DISCRIMINATOR_PREFIXES) for k in state)
    if not with_discriminators:
        state = {k: v for k, v in state.items() if not k.startswith(DISCRIMINATOR_PREFIXES)}
    with torch.device("meta"):
        model = SwappingAutoencoder(cfg, with_discriminators=with_discriminators)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state, assign=True)
    return model


def check_state_dict(model: torch.nn.Module, state: Mapping[str, Any], source: str = "state dict") -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} (file {list(_shape(state[k]))}, model {list(expected[k].shape)})"
        for k in expected
        if k in state and _shape(state[k]) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"{source}: the checkpoint does not fit the SAE architecture {getattr(model, 'config', '')}"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            more = f", ... ({len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
            lines.append(f"  {len(items)} {title} key(s): {', '.join(items[:_LIST_LIMIT])}{more}")
    if any(k.startswith(DISCRIMINATOR_PREFIXES) for k in missing) and not any(
        k.startswith(DISCRIMINATOR_PREFIXES) for k in state
    ):
        lines.append(
            "  The file has no discriminator weights: pass with_discriminators=False to load E and G for inference."
        )
    else:
        lines.append(
            "  Pass the config the file was trained with (config=SAEConfig(...) or a dict of overrides), or check that the file is an SAE checkpoint."
        )
    raise CheckpointError("\n".join(lines))


# ---- architecture from shapes --------------------------------------------------------------------
def _shape(v: Any) -> tuple[int, ...]:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


def _simplest(lo: float, hi: float, default: float) -> float | None:
    """``default`` if it lies in [lo, hi), else the fraction p/q in [lo, hi) with the smallest q."""
    if lo <= default < hi:
        return default
    for q in range(1, 100_001):
        p = math.ceil(lo * q - 1e-9)
        if lo - 1e-12 <= p / q < hi:
            return p / q
    return None


def _floor_fit(constraints: Iterable[tuple[float, int, int | None]], default: float) -> float | None:
    """Capacity x with ``min(cap, int(base * x)) == observed`` for every (base, observed, cap)."""
    lo, hi = 0.0, math.inf
    for base, observed, cap in constraints:
        lo = max(lo, observed / base)
        if cap is None or observed < cap:
            hi = min(hi, (observed + 1) / base)
    return _simplest(lo, hi, default) if lo < hi else None


def _indexed(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> dict[str, str]:
    """The keys matching ``pattern``, by its first group (a block's number or name)."""
    rx = re.compile(pattern)
    return {m.group(1): key for key in shapes if (m := rx.fullmatch(key))}


class _ShapeError(ValueError):
    """A tensor whose shape no SAE layer has (too few dimensions, or an empty one)."""


def _dim(shapes: Mapping[str, tuple[int, ...]], key: str, axis: int) -> int:
    """Size ``axis`` (at least 1) of the tensor ``key``: KeyError when it is absent, :class:`_ShapeError` when it
    has no such axis or it is empty."""
    shape = shapes[key]
    if len(shape) <= axis or shape[axis] < 1:
        raise _ShapeError(f"{key} has shape {list(shape)}, which the SAE layer of that name never has")
    return shape[axis]


def _fit_encoder(widths: list[int], texture: int, defaults: SAEConfig) -> dict[str, Any]:
    """Capacity and steepness reproducing ``widths``, else the widths themselves."""
    uncapped = [(i, w) for i, w in enumerate(widths) if w < texture]
    guesses = [defaults.encoder_steepness]
    if len(uncapped) >= 2:
        (i0, w0), (i1, w1) = uncapped[0], uncapped[-1]
        estimate = (w1 / w0) ** (1 / (i1 - i0))
        guesses += [round(estimate, 1), round(estimate, 2)]
    for steepness in guesses:
        lo, hi = 0.0, math.inf
        for i, w in enumerate(widths):
            base = steepness ** (5 + i)
            lo = max(lo, (w - 0.5) / base)
            if w < texture:
                hi = min(hi, (w + 0.5) / base)
        capacity = _simplest(lo, hi, defaults.encoder_capacity) if lo < hi else None
        if capacity is not None and encoder_schedule(capacity, steepness, texture, len(widths)) == widths:
            return {"encoder_capacity": capacity, "encoder_steepness": steepness, "encoder_channels": None}
    return {"encoder_channels": tuple(widths)}


def infer_config(
    state: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, source: str = "state dict"
) -> SAEConfig:
    """The SAEConfig whose model has exactly the keys and shapes of ``state`` (tensors or shapes).

    E and G fix every field except ``crop_size`` and ``generator_noise`` (official default True);
    ``crop_size`` and the discriminator fields are read from the ``D.`` / ``Dpatch.`` shapes. Without
    them ``crop_size`` must be given in ``overrides`` and the discriminator fields keep the official
    defaults. Encoder widths that follow no capacity/steepness schedule (e.g. a 1024 model saved by
    the first public release, which did not cap them) are kept in ``encoder_channels``.
    """
    shapes = {k: _shape(v) for k, v in state.items()}
    overrides = dict(overrides or {})
    defaults = SAEConfig()
    try:
        structure = _dim(shapes, "E.ToSpatialCode.1.Conv.weight", 0)
        texture = _dim(shapes, "E.ToGlobalCode.0.weight", 0)
        style_dim = _dim(shapes, "G.SpatialCodeModulation.scale.weight", 1)
        down = _indexed(shapes, r"E\.DownToSpatialCode\.ResBlockDownBy(\d+)\.conv2\.Conv\.weight")
        to_texture = _indexed(shapes, r"E\.DownToGlobalCode\.ConvLayerDownBy(\d+)\.Conv\.weight")
        widths = (
            [_dim(shapes, "E.FromRGB.Conv.weight", 0)]
            + [_dim(shapes, down[n], 0) for n in sorted(down, key=int)]
            + [_dim(shapes, to_texture[n], 0) for n in sorted(to_texture, key=int)]
        )
        heads = _indexed(shapes, r"G\.HeadResnetBlock(\d+)\.conv1\.conv\.weight")
        ups = _indexed(shapes, r"G\.UpsamplingResBlock(\d+)\.conv1\.conv\.weight")
        up_widths = [_dim(shapes, ups[n], 1) for n in sorted(ups, key=int)]
        antialias = shapes["G.UpsamplingResBlock16.conv1.conv.blur.kernel"] != (1, 1)
    except KeyError as err:
        raise CheckpointError(f"{source}: not a Swapping Autoencoder state dict (no key {err.args[0]}).") from err
    except _ShapeError as err:
        raise CheckpointError(f"{source}: not a Swapping Autoencoder state dict ({err}).") from err
    k = len(down)
    fields: dict[str, Any] = {
        "structure_channels": structure,
        "texture_channels": texture,
        "num_classes": style_dim - texture,
        "encoder_downsamplings_structure": k,
        "encoder_downsamplings_texture": len(to_texture),
        "generator_head_blocks": len(heads),
        "antialias": antialias,
        **_fit_encoder(widths, texture, defaults),
    }
    bases = [min(512, 128 * 2 ** (k - u)) for u in range(1, k + 1)]
    fields["generator_capacity"] = _floor_fit(
        [(b, w, None) for b, w in zip(bases, up_widths)], defaults.generator_capacity
    )
    with_discriminators = any(key.startswith(DISCRIMINATOR_PREFIXES) for key in shapes)
    if with_discriminators:
        try:
            fields.update(_infer_discriminators(shapes, defaults))
        except _ShapeError as err:
            raise CheckpointError(
                f"{source}: damaged discriminator weights ({err}); to load E and G only, pass with_discriminators=False and the whole config=SAEConfig(...)."
            ) from err
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"{source}: incomplete discriminator weights (D. and Dpatch. keys): {err!r}; to load E and G only, pass with_discriminators=False and the whole config=SAEConfig(...)."
            ) from err
    fields.update(overrides)
    if "crop_size" not in fields:
        raise UnknownImageSizeError(
            f"{source}: the image size the model was trained at cannot be read from a file without D. weights; pass config={{'crop_size': N}} (e.g. 256, 512 or 768 for the official FFHQ models)."
        )
    unknown = [name for name, v in fields.items() if v is None and name != "encoder_channels"]
    if unknown:
        raise CheckpointError(
            f"{source}: the layer widths follow no official schedule for {unknown}; pass config=SAEConfig(...) explicitly."
        )
    try:
        cfg = SAEConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: inferred an invalid architecture: {err}") from err
    with torch.device("meta"):
        model = SwappingAutoencoder(cfg, with_discriminators=with_discriminators)
    check_state_dict(model, state, source)
    return cfg


def _infer_discriminators(shapes: Mapping[str, tuple[int, ...]], defaults: SAEConfig) -> dict[str, Any]:
    """crop_size, patch_size and discriminator capacities and widths from the ``D.`` / ``Dpatch.`` shapes."""
    # the width entering the block named for resolution 2^i is the channel-table entry for 2^i
    d_in = _indexed(shapes, r"D\.stylegan2_D\.convs\.([0-9x]+)\.conv1\.Conv\.weight")
    d_seen = {
        2**i: _dim(shapes, d_in[discriminator_block_name(i)], 1)
        for i in range(3, 11)
        if discriminator_block_name(i) in d_in
    }
    final = "D.stylegan2_D.final_linear.0.weight"  # ch[4] x (ch[4] * side^2)
    d_top, d_flat = _dim(shapes, final, 0), _dim(shapes, final, 1)
    side = math.isqrt(d_flat // d_top)
    p_in = _indexed(shapes, r"Dpatch\.convs\.([0-9x]+)\.conv1\.Conv\.weight")
    p_seen = {2**i: _dim(shapes, p_in[patch_block_name(i)], 1) for i in range(3, 9) if patch_block_name(i) in p_in}
    p_seen[4] = _dim(shapes, "Dpatch.convs.5.conv1.Conv.weight", 1)
    top = _dim(shapes, "Dpatch.convs.6.Conv.weight", 0)
    d_fit = [
        (2 * b, d_seen[r], d_top if capped else None) for r, (b, capped) in DISCRIMINATOR_WIDTHS.items() if r in d_seen
    ]
    p_fit = [(b, p_seen[r], top if capped else None) for r, (b, capped) in PATCH_WIDTHS.items() if r in p_seen]
    return {
        "crop_size": side * max(d_seen) // 4,
        "discriminator_capacity": _floor_fit(d_fit, defaults.discriminator_capacity),
        "patch_size": max(p_seen),
        "patch_discriminator_max_channels": top,
        "patch_discriminator_capacity": _floor_fit(p_fit, defaults.patch_discriminator_capacity),
        "discriminator_max_channels": d_top,
        "patch_discriminator_pair_width": _dim(shapes, "Dpatch.pairlinear.0.weight", 0),
    }
