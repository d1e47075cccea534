"""Helpers of the command-line tests (no tests here): run a root script (train.py, edit.py, evaluate.py, app.py)
as ``python script args...`` in a fresh process, without paying Python's start-up and torch + Lightning imports
(~5 s of CPU) on every run.

Each run is a new child of a fork server (:mod:`multiprocessing`'s ``forkserver``, one per pytest worker) that has
imported the heavy libraries and nothing else ran in it: the child gets its own working folder, environment,
``sys.argv``, file descriptors 1 and 2, and exit status, as from the interpreter; no state of the tests leaks
in (the server never ran a test) and none leaks out. Forking the test process itself would hang: an OpenMP
thread pool that has run does not survive a fork.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["cli_preload"])  # the heavy imports, once per server


def _ensure_fork_server() -> None:
    """Start the fork server unless it runs: it imports cli_preload from this folder, but it gets only this
    process's environment, not its ``sys.path`` (the folder goes into its PYTHONPATH)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), saved]))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


class ScriptProcess:
    """A script started by :func:`start_script`: ``args``, ``wait``, ``terminate`` and ``kill`` as
    :class:`subprocess.Popen`'s."""

    def __init__(self, child: multiprocessing.Process, args: list[str]):
        self._child = child
        self.args = args

    def wait(self, timeout: float | None = None) -> int:
        """The exit status; raises :class:`subprocess.TimeoutExpired` if still running after ``timeout`` s."""
        self._child.join(timeout)
        if self._child.is_alive():
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._child.exitcode

    def terminate(self) -> None:
        self._child.terminate()  # SIGTERM

    def kill(self) -> None:
        self._child.kill()


def start_script(
    script: Path, arguments: list[str], *, cwd: Path, stdout: Path, stderr: Path, env: dict[str, str] | None = None
) -> ScriptProcess:
    """Start ``python script *arguments`` in ``cwd`` with environment ``env`` (default: this process's), its
    output written to the files ``stdout`` and ``stderr`` (the same path: both into one file, as ``2>&1``)."""
    environment = dict(os.environ if env is None else env)
    _ensure_fork_server()
    child = _context.Process(
        target=_as_interpreter, args=(str(script), list(arguments), str(cwd), environment, Path(stdout), Path(stderr))
    )
    child.start()
    return ScriptProcess(child, [sys.executable, str(script), *arguments])


def run_script(
    script: Path, arguments: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python script *arguments`` (see :func:`start_script`) to its end: its text output and exit status like
    :func:`subprocess.run` with ``capture_output=True, text=True``.

    Raises :class:`subprocess.TimeoutExpired` (the child killed) after ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="l2sae_cli_") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        process = start_script(script, arguments, cwd=cwd, stdout=out, stderr=err, env=env)
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise subprocess.TimeoutExpired(process.args, timeout, _read(out), _read(err)) from None
        return subprocess.CompletedProcess(process.args, status, _read(out), _read(err))


def _read(path: Path) -> str:
    return path.read_text(errors="backslashreplace") if path.is_file() else ""


def _as_interpreter(script: str, arguments: list[str], cwd: str, env: dict[str, str], out: Path, err: Path) -> None:
    """In the child: set up what ``python script *arguments`` would, run the script as ``__main__``, exit as the
    interpreter does (status of ``SystemExit``, 1 with the traceback on an exception, threads and ``atexit`` first)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS", "").isdigit():  # torch took the server's; a new interpreter would take this one
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    opened = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(opened, 1)
    if err != out:
        os.close(opened)
        opened = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(opened, 2)
    os.close(opened)
    # as the interpreter's for files: stdout block-buffered (line by line with PYTHONUNBUFFERED), stderr by line
    stdout_buffering = 1 if env.get("PYTHONUNBUFFERED") else -1  # 1: by line, -1: by block
    sys.stdout = open(1, "w", buffering=stdout_buffering, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.argv = [script, *arguments]
    sys.path.insert(0, os.path.dirname(script))
    status = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    threading._shutdown()  # the interpreter waits for non-daemon threads, then runs the atexit functions
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_status(code) -> int:
    """The exit status of ``sys.exit(code)``: None is 0, an int itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
