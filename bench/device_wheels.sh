#!/usr/bin/env bash
# Wheels of what the benchmarks need and this workplace's lent GPU machine lacks (it has Python 3.12, torch,
# Lightning, torchmetrics, numpy, scipy, matplotlib, pillow, PyYAML; nothing can be fetched there), into .whl/
# (git-ignored; about 0.5 MB). The versions are those this project's tests ran with. See bench/gpu.sh for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 lpips==0.1.4 torch-fidelity==0.4.0
# hydra-core's parser runtime exists only as a source archive: built here into a pure-Python wheel
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -l .whl
