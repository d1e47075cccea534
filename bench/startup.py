"""Start-up of the commands, with and without the garbage collector off during their imports.

``train.py``, ``edit.py``, ``evaluate.py`` and ``app.py`` import their libraries inside
``l2sae.cli.imports_outside_collection`` (collector off, then what the imports made frozen). Each command below
runs in a fresh interpreter through a wrapper that either leaves that as it is ("frozen") or replaces it by a
no-op ("as Python does"); the two alternate, so both see the same machine. Times: wall and CPU (user + system) of
the whole process, medians over ``--runs``.

    python bench/startup.py              # 5 runs of each command each way
    python bench/startup.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from benchlib import format_table, machine_info, machine_line, write_results

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {  # what each command does: its help, or a config error found before any work
    "python edit.py --help": ["edit.py", "--help"],
    "python evaluate.py --help": ["evaluate.py", "--help"],
    "python app.py --help": ["app.py", "--help"],
    "python train.py data.batch_size=0": ["train.py", "data.batch_size=0"],
}
WRAPPER = """
import contextlib, runpy, sys
import l2sae.cli
if sys.argv[1] == "as-python-does":
    l2sae.cli.imports_outside_collection = contextlib.nullcontext
sys.argv = sys.argv[2:]
sys.path.insert(0, {root!r})
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def timed_run(arguments: list[str], way: str) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh interpreter running the command ``arguments`` the ``way`` given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    environment = {**os.environ, "WANDB_MODE": "disabled"}
    code = WRAPPER.format(root=str(ROOT))
    subprocess.run(
        [sys.executable, "-c", code, way, *arguments], cwd=ROOT, env=environment, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    machine = machine_info(torch.device("cpu"))
    print(machine_line(machine), flush=True)
    rows = []
    for name, arguments in COMMANDS.items():
        times: dict[str, list[tuple[float, float]]] = {"as-python-does": [], "frozen": []}
        for _ in range(args.runs):
            for way in times:
                times[way].append(timed_run(arguments, way))
        row = {"command": name}
        for way, key in (("as-python-does", "before"), ("frozen", "now")):
            row[f"{key}_wall_s"] = statistics.median(wall for wall, _ in times[way])
            row[f"{key}_cpu_s"] = statistics.median(cpu for _, cpu in times[way])
        row["speedup"] = row["before_wall_s"] / row["now_wall_s"]
        rows.append(row)
        print(f"{name}: {row['before_wall_s']:.2f} -> {row['now_wall_s']:.2f} s", flush=True)
    columns = [
        ("command", "command"),
        ("before_wall_s", "GC as Python: wall s"),
        ("before_cpu_s", "CPU s"),
        ("now_wall_s", "imports frozen: wall s"),
        ("now_cpu_s", "CPU s"),
        ("speedup", "x"),
    ]
    print(machine_line(machine))
    print(format_table(rows, columns))
    print(f"results: {write_results('startup', {'machine': machine, 'runs': args.runs, 'rows': rows})}")


if __name__ == "__main__":
    main()
