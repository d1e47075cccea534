"""tests/cli_helpers.py stands in for ``python script args...``: the same exit status, output, working folder,
arguments and environment as a new interpreter (compared with one), and nothing of the test process leaks in."""

import os
import subprocess
import sys

import pytest
from cli_helpers import run_script

SCRIPTS = {
    "prints": "import os, sys\nprint('out', sys.argv[1:], os.getcwd(), os.environ.get('L2SAE_PROBE'))\n"
    "print('err', file=sys.stderr)\n",
    "exits_2": "import sys\nprint('before')\nsys.exit(2)\n",
    "exits_with_a_message": "import sys\nsys.exit('a message')\n",
    "raises": "print('before')\nraise ValueError('bad value')\n",
    "main_guard": "if __name__ == '__main__':\n    print('as main')\n",
    "atexit": "import atexit\natexit.register(print, 'at exit')\nprint('body')\n",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_behaves_as_under_a_new_interpreter(tmp_path, name):
    script = tmp_path / f"{name}.py"
    script.write_text(SCRIPTS[name])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "L2SAE_PROBE": "probe"}
    arguments = ["a=1", "b"]
    expected = subprocess.run([sys.executable, script, *arguments], cwd=cwd, env=env, capture_output=True, text=True)
    got = run_script(script, arguments, cwd=cwd, env=env)
    assert got.returncode == expected.returncode
    assert got.stdout == expected.stdout
    assert got.stderr.splitlines()[-1:] == expected.stderr.splitlines()[-1:]  # a traceback's last line
    assert ("Traceback" in got.stderr) == ("Traceback" in expected.stderr)


def test_nothing_of_the_test_process_leaks_in(tmp_path, monkeypatch):
    monkeypatch.setenv("L2SAE_ONLY_IN_THE_TEST", "1")
    sys.modules["l2sae_only_in_the_test"] = sys  # a module imported here, not in the fork server
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\nprint(os.environ.get('L2SAE_ONLY_IN_THE_TEST'), 'l2sae_only_in_the_test' in sys.modules)\n"
    )
    try:
        done = run_script(script, [], cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    finally:
        del sys.modules["l2sae_only_in_the_test"]
    assert (done.returncode, done.stdout) == (0, "None False\n")


def test_scripts_start_with_the_heavy_libraries_imported_and_frozen(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(
        "import gc, sys\n"
        "print('torch' in sys.modules, 'l2sae.training.run' in sys.modules, gc.get_freeze_count() > 0)\n"
    )
    done = run_script(script, [], cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "True True True\n"), done.stderr


def test_a_script_runs_the_intra_op_threads_its_environment_asks_for(tmp_path):
    script = tmp_path / "threads.py"
    script.write_text("import torch\nprint(torch.get_num_threads())\n")
    for threads in ("1", "2"):
        done = run_script(script, [], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": threads})
        assert (done.returncode, done.stdout) == (0, threads + "\n"), done.stderr


def test_a_script_past_its_timeout_is_killed(tmp_path):
    script = tmp_path / "sleeps.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        run_script(script, [], cwd=tmp_path, timeout=1)
    assert expired.value.output == "started\n"
