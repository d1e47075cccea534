#!/usr/bin/env bash
# Run a command as on a CPU FACTOR times slower per core with AVX2 kernels only (an older AVX2-only server):
#   sudo bash bench/slower_cpu.sh FACTOR COMMAND [ARGS...]
#   e.g. bash bench/slower_cpu.sh 2.1 python -m pytest     # the README's "emulated older server" figures
#        OMP_WAIT_POLICY=PASSIVE bash bench/slower_cpu.sh 2.1 python train.py
# torch and oneDNN are restricted to AVX2 (no AVX-512, no bf16 units: precision auto resolves to float32), and a
# CPU cgroup grants the command and its children CORES / FACTOR cores of time (CFS bandwidth control, 10 ms
# periods), CORES being this machine's. An estimate, not the real machine: the cgroup's time is shared, so a
# phase with one busy process runs up to CORES times faster than it would on the slower CPU (optimistic), and
# sleeps, waits and the disk keep their speed. Processes of several intra-op threads need OMP_WAIT_POLICY=PASSIVE:
# threads that wait for each other otherwise spin through the quota (a quick-start SMPN step with 2 threads ran
# 4.0x slower, 4.6 against 18.7 steps/s, not 2.1x); with it 7.0-8.3 against 19.1 steps/s (2.3-2.7x: the AVX2
# kernels and the sleeping threads' wake-ups, a little pessimistic). The test suite's workers run one thread each.
# Needs write access to the cgroup file system (root; cgroup v1 or v2).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 FACTOR COMMAND [ARGS...]" >&2
  exit 2
fi
factor=$1
shift
period=10000  # microseconds
quota=$(python3 -c "import os; print(round($period * len(os.sched_getaffinity(0)) / float('$factor')))")
if [[ -d /sys/fs/cgroup/cpu && ! -f /sys/fs/cgroup/cgroup.controllers ]]; then  # cgroup v1
  group=/sys/fs/cgroup/cpu/l2sae_slower_cpu_$$
  mkdir "$group"
  echo "$period" >"$group/cpu.cfs_period_us"
  echo "$quota" >"$group/cpu.cfs_quota_us"
else  # cgroup v2
  group=/sys/fs/cgroup/l2sae_slower_cpu_$$
  mkdir "$group"
  echo "$quota $period" >"$group/cpu.max"
fi
trap 'rmdir "$group" 2>/dev/null || true' EXIT
echo "slower_cpu: $factor x slower per core: $quota us of CPU per $period us period for $(nproc) cores; AVX2 kernels" >&2
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$group" "$@"
