"""What the command-line tests' fork server (tests/cli_helpers.py) imports once: what the root scripts import
before they do anything (not gradio: app.py sets its environment first), with the garbage collector off and then
frozen, as a command's own start does (:func:`l2sae.cli.imports_outside_collection`)."""

from l2sae.cli import imports_outside_collection

with imports_outside_collection():
    import hydra  # noqa: F401
    import pytorch_lightning  # noqa: F401
    import torch  # noqa: F401
    import torchmetrics  # noqa: F401
    import torchvision  # noqa: F401

    import l2sae.editing.run  # noqa: F401
    import l2sae.evaluation.run  # noqa: F401
    import l2sae.training.run  # noqa: F401
