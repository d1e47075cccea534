"""Run a Python script as if on another machine: ``python separate_machine.py HIDDEN SCRIPT [ARGS...]``.

Opening a file under the folder ``HIDDEN`` (the other node's files) fails as if the file did not exist, and
each attempt to write there (open for writing, mkdir, rename, remove, symlink, ...) is also reported on stderr
as ``WRITE-ATTEMPT <event> <path>``. (Directory listings and ``stat`` stay possible: Python has no audit
events for ``stat``, and a listing that fails where ``stat`` succeeds is what no file system does.) Used by the multi-node tests (a test helper, not a test).
"""

import os
import runpy
import sys

WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def paths_of(event: str, args: tuple) -> list:
    if event in ("os.rename", "os.symlink", "os.link"):
        return [args[0], args[1]]
    return [args[0]] if args else []


def writes(event: str, args: tuple) -> bool:
    if event == "open":
        _, mode, flags = args
        return bool(set(mode or "") & set("wax+")) or bool((flags or 0) & WRITE_FLAGS)
    return event in WRITE_EVENTS or event == "shutil.rmtree"


def main() -> None:
    hidden = os.path.realpath(sys.argv[1])
    watched = WRITE_EVENTS | {"open", "shutil.rmtree"}

    def hook(event: str, args: tuple) -> None:
        if event not in watched:
            return
        for path in paths_of(event, args):
            if isinstance(path, int) or path is None:
                continue
            real = os.path.realpath(os.fsdecode(path))
            if real == hidden or real.startswith(hidden + os.sep):
                if writes(event, args):
                    sys.stderr.write(f"WRITE-ATTEMPT {event} {real}\n")
                raise FileNotFoundError(2, "not on this machine", real)

    sys.argv = sys.argv[2:]
    sys.addaudithook(hook)
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
