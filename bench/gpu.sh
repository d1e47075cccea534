#!/usr/bin/env bash
# The benchmarks on a CUDA device (not run yet: no GPU was available; the README says the figures are missing).
#   bash bench/gpu.sh [OFFICIAL_REPO]   # OFFICIAL_REPO: a checkout of taesungp/swapping-autoencoder-pytorch
# Edit latency at 256 and 512 px (fp32 and bf16; vs the official code when OFFICIAL_REPO is given), then one
# SMN and one SMPN training step at ffhq256 in fp32 and bf16-mixed. Tables print; JSON goes to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
official=()
if [[ $# -ge 1 ]]; then official=(--official-repo "$1"); fi
python bench/edit_latency.py --device cuda --sizes 256 512 --runs 20 --warmup 3 "${official[@]}"
python bench/train_step.py --device cuda --presets ffhq256 --networks smn smpn --precision 32 bf16 --batch 4 --runs 5
