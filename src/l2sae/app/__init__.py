"""``python app.py``: a local web page over :class:`l2sae.editing.L2SAEEditor` (Gradio).

The page (:mod:`l2sae.app.page`) only calls the editor and the photo pipeline through
:mod:`l2sae.app.pipeline`; :mod:`l2sae.app.server` starts and stops it; ``run`` is the Hydra task.
"""
