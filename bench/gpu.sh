#!/usr/bin/env bash
# The benchmarks on a CUDA device (not run yet: no GPU was available; the README says the figures are missing).
#   bash bench/gpu.sh [OFFICIAL_REPO]   # OFFICIAL_REPO: a checkout of taesungp/swapping-autoencoder-pytorch
# Edit latency at 256 and 512 px (fp32, bf16 and auto; vs the official code when OFFICIAL_REPO is given; no photo
# rows: finding faces is CPU work, timed in the CPU tables), then one SMN and one SMPN training step at ffhq256 in
# fp32 and bf16-mixed. Tables print; JSON goes to bench/results/.
# A dry run of the same steps on the CPU, small (checks the script, not the GPU):
#   BENCH_DEVICE=cpu BENCH_SIZES=64 BENCH_PRESETS=tiny BENCH_RUNS=1 bash bench/gpu.sh [OFFICIAL_REPO]
#
# On this workplace's lent GPU machine (Python 3.12 with torch, Lightning, torchmetrics; nothing can be fetched
# there), from the repository root here:
#   bash bench/device_wheels.sh                              # the packages it lacks, as wheels, into .whl/
#   git clone -q /work/.mirror/taesungp+swapping-autoencoder-pytorch/repo .official   # after fetch; 2.8 MB
# then the device tool's run, carry [".whl", ".official"], timeout_s 540:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && bash bench/gpu.sh .official 2>&1 | tee $OUT/gpu.log;
#   cp bench/results/*.json $OUT/
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled
device=${BENCH_DEVICE:-cuda}
read -r -a sizes <<<"${BENCH_SIZES:-256 512}"
read -r -a presets <<<"${BENCH_PRESETS:-ffhq256}"
runs=${BENCH_RUNS:-20}
if [[ $device == cuda* ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
official=()
if [[ $# -ge 1 ]]; then official=(--official-repo "$1"); fi
python bench/edit_latency.py --device "$device" --sizes "${sizes[@]}" --precision 32 bf16 auto --runs "$runs" \
  --warmup 3 --no-photo "${official[@]}"
python bench/train_step.py --device "${device%%:*}" --presets "${presets[@]}" --networks smn smpn --precision 32 bf16 \
  --batch 4 --runs "$(( runs < 5 ? runs : 5 ))"
