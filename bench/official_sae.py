"""The official Swapping Autoencoder code, imported from a checkout, with our networks' weights.

For side-by-side timing only (``edit_latency.py --official-repo DIR``): DIR is a checkout of
https://github.com/taesungp/swapping-autoencoder-pytorch (nothing of it is copied into this repository).

What the import changes in the official code, and why (printed with every table):
- ``util.is_custom_kernel_supported`` returns False, so the official layers take their own plain-PyTorch
  paths (``upfirdn2d_native``, leaky ReLU with bias) instead of compiling the CUDA kernels with nvcc at
  import (they cannot run on a CPU). No op of ours replaces an official one: both have native paths.
- The official ``util`` package imports sklearn, dominate and func_timeout for PCA plots and HTML pages;
  where one is not installed an empty stand-in module takes its place (the networks never call them).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from argparse import Namespace
from pathlib import Path

import torch

from l2sae.nn import SwappingAutoencoder

STAND_INS = {  # missing package -> its modules the official util imports -> names taken from them
    "sklearn": {"sklearn": (), "sklearn.decomposition": ("PCA",)},
    "dominate": {"dominate": (), "dominate.tags": ("meta", "h3", "table", "tr", "td", "p", "a", "img", "br")},
    "func_timeout": {"func_timeout": ("func_timeout", "FunctionTimedOut")},
}
CHANGES = (
    "official code: its own native PyTorch ops (util.is_custom_kernel_supported -> False, no CUDA kernels "
    "compiled); none of ours substituted"
)


def _stand_in(package: str) -> bool:
    """Put empty modules for ``package`` into sys.modules unless it is installed; True if it was not."""
    if package in sys.modules or importlib.util.find_spec(package) is not None:
        return False
    for name, attributes in STAND_INS[package].items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        for attribute in attributes:
            setattr(module, attribute, type(attribute, (Exception,), {}))
        sys.modules[name] = module
    return True


def import_official(repo: str | Path) -> tuple[type, type, list[str]]:
    """The official encoder and generator classes from the checkout ``repo``, and the stand-in modules."""
    repo = Path(repo).resolve()
    if not (repo / "models" / "networks" / "generator.py").is_file():
        raise SystemExit(
            f"--official-repo {repo}: not a checkout of taesungp/swapping-autoencoder-pytorch "
            "(models/networks/generator.py is missing)"
        )
    importlib.import_module("torchvision")  # before the stand-ins: it looks for sklearn's real spec
    stood_in = [package for package in STAND_INS if _stand_in(package)]
    sys.path.insert(0, str(repo))
    util = importlib.import_module("util")
    util.is_custom_kernel_supported = lambda: False
    encoder = importlib.import_module("models.networks.encoder").StyleGAN2ResnetEncoder
    generator = importlib.import_module("models.networks.generator").StyleGAN2ResnetGenerator
    return encoder, generator, stood_in


class OfficialSAE(torch.nn.Module):
    """The official E and G holding the weights of one of our SwappingAutoencoders (same state-dict names)."""

    def __init__(self, encoder_class: type, generator_class: type, sae: SwappingAutoencoder):
        super().__init__()
        options = Namespace(**sae.config.to_official_options())
        self.E, self.G = encoder_class(options), generator_class(options)
        state = sae.state_dict()
        for prefix, network in (("E.", self.E), ("G.", self.G)):
            network.load_state_dict(
                {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
            )
        noise = sae.config.generator_noise
        for module in self.G.modules():  # zero noise, as our networks in the editor
            if type(module).__name__ == "NoiseInjection" and noise:
                module.weight.data.zero_()
        self.eval().requires_grad_(False).to(next(sae.parameters()).device)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.E(images)

    def decode(self, structure: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        return self.G(structure, texture)

    def decode_sliced(self, structure: torch.Tensor, texture: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """The official generator's layers, in their order, on the whole structure code normalised and then
        sliced by ``channels`` (1 x C x 1 x 1 of 0/1; B x 3 x H x W out): ``G(code, texture)`` would normalise the
        slice again, stretching each region's channels to unit length."""
        normalize = importlib.import_module("util").normalize  # the official one (imported with the networks)
        style = normalize(texture)
        x = self.G.SpatialCodeModulation(normalize(structure) * channels, style)
        for name, layer in self.G.named_children():
            if name.startswith(("HeadResnetBlock", "UpsamplingResBlock")):
                x = layer(x, style)
        return self.G.ToRGB(x, style, None)
