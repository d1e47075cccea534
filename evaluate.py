"""Score L2SAE's region edits and baseline folders (Hydra entry point); settings: conf/evaluate.yaml.

Examples::

    python evaluate.py                                          # the quick start's networks on synthetic faces
    python evaluate.py data=celebamask_hq ckpt.smn=SMN.pt ckpt.smpn=SMPN.pt
    python evaluate.py data=celebamask_hq baselines.semanticstylegan.dir=DIR   # see docs/semanticstylegan.md
"""

import os
from pathlib import Path

import hydra

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg) -> dict[str, float]:
    from l2sae.evaluation.run import run

    return run(cfg)


if __name__ == "__main__":
    main()
