"""L2SAE: localized style manipulation of face images with Swapping Autoencoders.

Importing the package is cheap: the networks live in :mod:`l2sae.nn` (pure PyTorch),
Lightning and Hydra are only imported by :mod:`l2sae.training` and the entry points.
"""

__version__ = "0.1.0"
