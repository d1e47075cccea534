"""Score L2SAE's region edits and baseline folders (Hydra entry point); settings: conf/evaluate.yaml.

Examples::

    python evaluate.py                                          # the quick start's networks on synthetic faces
    python evaluate.py data=celebamask_hq ckpt.smn=SMN.pt ckpt.smpn=SMPN.pt
    python evaluate.py data=celebamask_hq baselines.semanticstylegan.dir=DIR   # see docs/semanticstylegan.md
"""

from l2sae.cli import evaluate

if __name__ == "__main__":
    evaluate()
