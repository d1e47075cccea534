"""Train L2SAE (Hydra entry point). With no arguments: the CPU quick start (tiny SMN, then tiny SMPN).

python train.py                                   # quick start on synthetic faces
python train.py experiment=smpn_celebamaskhq512   # a full configuration
python train.py -m slicing=default,one_each       # a sweep, one folder per job
"""

import os
from pathlib import Path

import hydra

from l2sae.training import run  # also registers the resolvers of conf/hydra/train.yaml

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg) -> dict:
    return run(cfg)


if __name__ == "__main__":
    main()
