"""Training: the SMN and SMPN LightningModules, callbacks and the Hydra-driven ``run(cfg)``.

This is the only package (with the entry points) that imports Lightning and Hydra.
"""

from .callbacks import ImageGrid, NaNGuard, NonFiniteLossError, RandomStates, StepCheckpoint
from .run import optimized_value, run
from .smn import SMNModule
from .smpn import SMPNModule

__all__ = [
    "ImageGrid",
    "NaNGuard",
    "NonFiniteLossError",
    "RandomStates",
    "SMNModule",
    "SMPNModule",
    "StepCheckpoint",
    "optimized_value",
    "run",
]
