"""The bottom layer: what every task (training, editing, evaluation, the app) shares.

``errors`` (the project's error types), ``choices`` (a setting's closed choices as string enums), ``files``
(atomic writes), ``images`` (the one image decoder and writer), ``device`` (device and precision choice),
``tracking`` (logger and W&B set-up and teardown), ``pretrained`` (third-party weight files, read weights-only)
and ``tables`` (Markdown tables).
It imports nothing else of l2sae, and nothing here imports Hydra, OmegaConf or Lightning at import time
(``tracking`` imports them inside its functions), so library code may depend on it freely.
"""
