"""Train L2SAE (Hydra entry point). With no arguments: the CPU quick start (tiny SMN, then tiny SMPN).

python train.py                                   # quick start on synthetic faces
python train.py experiment=smpn_celebamaskhq512   # a full configuration
python train.py -m slicing=default,one_each       # a sweep, one folder per job
"""

from l2sae.cli import train

if __name__ == "__main__":
    train()
