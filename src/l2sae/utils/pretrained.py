"""Third-party pretrained weights (Inception for FID, AlexNet/VGG and LPIPS heads): found, read safely, explained.

Every such file is read here with ``torch.load(..., weights_only=True)`` and checked for the keys its network
expects before any library sees it; libraries get the resulting tensors, never the file, so a weight file
cannot run code (torch-fidelity and ``torch.hub`` would unpickle it with ``weights_only=False``). Files come
from a configured path or the torch hub cache (``$TORCH_HOME/hub/checkpoints/``, by default
``~/.cache/torch/hub/checkpoints/``), else are downloaded; where none works (no network),
:class:`MissingWeightsError` says which file to place where.
"""

from __future__ import annotations

import inspect
import pickle
import re
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

import torch
from torch import Tensor

from l2sae.utils.choices import Choice

LPIPS_BACKBONES = {  # torchvision's files for LPIPS' backbones, by lpips' net name
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}
LpipsBackbone = Choice("LpipsBackbone", {name: name for name in LPIPS_BACKBONES})  # the ``net`` setting


def hub_checkpoint_path(filename: str) -> Path:
    """Where torch hub keeps ``filename``: ``$TORCH_HOME/hub/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


class MissingWeightsError(FileNotFoundError):
    """A pretrained backbone's weight file is neither configured, cached nor downloadable.

    ``weights_file``: the file's name; ``folder``: the torch hub cache folder it belongs in; ``key``: the
    config key of its path (None where there is none); ``configured``: True when that key names a missing file.
    """

    def __init__(self, weights_file: str, key: str | None, configured_path: str | Path | None = None) -> None:
        self.weights_file, self.key = weights_file, key
        self.folder = hub_checkpoint_path(weights_file).parent
        self.configured = configured_path is not None
        message = (
            f"the pretrained weights {weights_file} are not on this machine and could not be downloaded. "
            f"Copy {weights_file} into {self.folder}/ (the torch hub cache; set TORCH_HOME to use another cache)"
            + (f" or set {key}=/path/to/{weights_file}." if key else ".")
        )
        super().__init__(f"{key}={configured_path}: no such file. {message}" if self.configured else message)


class UnsafeWeightsError(ValueError):
    """A weight file that is not a plain state dict of tensors (it may hold code), or lacks expected keys."""


def local_weights(filename: str, configured_path: str | Path | None, key: str | None) -> Path | None:
    """The weight file to load: the configured path (which must exist), else the cached file, else None.

    None means ``filename`` must be downloaded (:func:`download_weights`).
    """
    if configured_path is not None:
        path = Path(configured_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(filename, key, configured_path)
        return path
    cached = hub_checkpoint_path(filename)
    return cached if cached.is_file() else None


@contextmanager
def explain_download_failure(filename: str, key: str | None) -> Iterator[None]:
    """Turn a failed download (no network) of ``filename`` into a :class:`MissingWeightsError`."""
    try:
        yield
    except (URLError, ConnectionError, TimeoutError) as error:
        raise MissingWeightsError(filename, key) from error


def load_failure(path: str | Path, error: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` raised ``error``, in one line naming ``path`` (no advice).

    Pickled Python objects (a saved ``nn.Module``, a class, code): refused for safety, with torch's reason
    (e.g. "Unsupported global: GLOBAL x.Y ...") alone, without its multi-line text and terminal colour codes.
    Anything else: the file is not a readable PyTorch file (empty, truncated, another kind of file).
    """
    if isinstance(error, pickle.UnpicklingError):
        return (
            f"{path}: holds pickled Python objects ({unpickling_reason(error)}), which are refused for safety as "
            "they could hold code (weight files are read with torch.load(weights_only=True))"
        )
    if isinstance(error, EOFError) and Path(path).stat().st_size == 0:
        return f"{path}: an empty file (0 bytes), not a PyTorch file"
    reason = _first_sentence(str(error))
    return f"{path}: not a readable PyTorch file ({type(error).__name__}{': ' + reason if reason else ''})"


def unpickling_reason(error: pickle.UnpicklingError) -> str:
    """torch's reason for refusing a pickle under ``weights_only=True`` (e.g. "Unsupported global: ..."), one line."""
    return _first_sentence(str(error).rpartition("WeightsUnpickler error:")[2]) or "not plain data"


def _first_sentence(text: str) -> str:
    """The first sentence of the first non-blank line of ``text``, terminal colour codes removed ('' if none)."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if line.strip()]
    return re.split(r"(?<=\.)\s", lines[0], maxsplit=1)[0].rstrip(".") if lines else ""


def read_weights(path: str | Path, expected_keys: Collection[str] = (), expected: str = "") -> dict[str, Tensor]:
    """A state dict (name -> tensor) read with ``weights_only=True``; it must hold ``expected_keys``.

    Raises :class:`UnsafeWeightsError` naming ``path`` and ``expected`` (what the file should be) otherwise.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled code, an empty or truncated file, not a torch file at all
        raise UnsafeWeightsError(
            f"{load_failure(path, error)}. Replace it with {expected or 'the original file'}."
        ) from error
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        raise UnsafeWeightsError(f"{path}: not a state dict of tensors; expected {expected or 'a state dict'}.")
    missing = [key for key in expected_keys if key not in state]
    if missing:
        raise UnsafeWeightsError(f"{path}: no {missing[0]!r} ({len(missing)} keys missing); expected {expected}.")
    return state


def download_weights(url: str, filename: str, key: str | None, expected_keys: Collection[str] = ()) -> dict:
    """Download ``url`` into the torch hub cache (as ``filename``) and read it like :func:`read_weights`."""
    path = hub_checkpoint_path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    with explain_download_failure(filename, key):
        torch.hub.download_url_to_file(url, str(path), progress=False)  # to a temporary name, then renamed
    return read_weights(path, expected_keys, filename)


def weights(
    filename: str, url: str, configured_path: str | Path | None, key: str | None, expected_keys: Collection[str] = ()
) -> dict[str, Tensor]:
    """The state dict of ``filename``: from ``configured_path``, else the hub cache, else downloaded from ``url``."""
    path = local_weights(filename, configured_path, key)
    if path is None:
        return download_weights(url, filename, key, expected_keys)
    return read_weights(path, expected_keys, filename)


def build_lpips(
    net: str = "alex",
    backbone_weights_path: str | Path | None = None,
    random_backbone: bool = False,
    key: str | None = None,
    net_key: str = "net",
):
    """A frozen LPIPS model in eval mode; call it on two image batches B x 3 x H x W in [-1, 1].

    The linear heads (shipped with lpips) and the torchvision backbone (``backbone_weights_path``, else the hub
    cache, else a download) are read by :func:`read_weights`. ``random_backbone=True`` keeps an untrained
    backbone (no file needed): for tests only. ``key`` / ``net_key``: the config keys named in errors.
    """
    import lpips

    net = LpipsBackbone.parse(net, net_key)
    with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*deprecated", category=UserWarning)
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    heads = Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / "v0.1" / f"{net}.pth"
    model.load_state_dict(read_weights(heads, ["lin0.model.1.weight"], f"lpips' own {heads.name}"), strict=False)
    if not random_backbone:
        filename, url = LPIPS_BACKBONES[net]
        _load_backbone(model, weights(filename, url, backbone_weights_path, key), backbone_weights_path or filename)
    return model.eval().requires_grad_(False)


def _load_backbone(model, torchvision_state: dict[str, Tensor], source: str | Path) -> None:
    """Copy a torchvision AlexNet / VGG-16 state dict's ``features.<i>.*`` into LPIPS' ``slice<k>.<i>.*``."""
    state = {}
    for name in model.net.state_dict():
        origin = "features." + name.split(".", 1)[1]
        if origin not in torchvision_state:
            raise UnsafeWeightsError(
                f"{source}: no {origin!r}; expected torchvision's {LPIPS_BACKBONES[model.pnet_type][0]} for LPIPS "
                f"net {model.pnet_type!r}."
            )
        state[name] = torchvision_state[origin]
    model.net.load_state_dict(state)
