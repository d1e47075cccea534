"""``python app.py`` in a new process (tests/cli_helpers.py), driven in headless Chromium (the OS package) by
Playwright.

It prints the URL; a face is uploaded, the strength slider moved, the result must change; SIGTERM stops
it and removes its temporary folder. With trained networks it renders the README's screenshot:

    APP_CKPT_DIR=logs/latest APP_SCREENSHOT=docs/app_screenshot.png python -m pytest -m slow tests/test_app_browser.py

(by default: tiny random networks, screenshot in tmp_path).
"""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import ScriptProcess, start_script

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(smn: Path, smpn: Path, log: Path) -> tuple[ScriptProcess, str, Path]:
    """``python app.py`` on a free port, its output in ``log``: (process, URL, its temporary folder)."""
    arguments = [f"ckpt.smn={smn}", f"ckpt.smpn={smpn}", f"port={free_port()}"]
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    log.touch()
    server = start_script(ROOT / "app.py", arguments, cwd=ROOT, stdout=log, stderr=log, env=environment)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while "running at" not in (output := log.read_text()) and time.monotonic() < deadline:
        try:
            server.wait(0.1)
        except subprocess.TimeoutExpired:
            continue  # still starting
        break  # exited
    url = re.search(r"running at (http://127\.0\.0\.1:\d+/)", output)
    workdir = re.search(r"results go to (\S+)", output)
    if not (url and workdir):
        server.kill()
        pytest.fail(f"app.py did not start:\n{log.read_text()}")
    return server, url.group(1), Path(workdir.group(1))


@pytest.mark.slow
def test_app_py_in_a_browser_upload_slide_result_changes_stop_cleans_up(tiny_checkpoints, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    folder = os.environ.get("APP_CKPT_DIR")
    checkpoints = (Path(folder) / "smn.pt", Path(folder) / "smpn.pt") if folder else tiny_checkpoints
    screenshot = Path(os.environ.get("APP_SCREENSHOT", tmp_path / "app_screenshot.png"))
    log = tmp_path / "app.log"
    server, url, workdir = start_app(*checkpoints, log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=TIMEOUT_MS)
            page.locator("#photo input[type=file]").set_input_files(str(workdir / "examples" / "synthetic_face_1.png"))
            status = page.locator("#status")
            status.get_by_text("Edited hair (strength 1, seed 0)").wait_for(timeout=TIMEOUT_MS)
            result = page.locator("#result img")
            first = result.get_attribute("src")

            page.locator("#strength input[type=number]").fill("2.5")
            page.locator("#strength input[type=number]").press("Enter")
            status.get_by_text("strength 2.5").wait_for(timeout=TIMEOUT_MS)
            page.wait_for_function(
                "old => document.querySelector('#result img').getAttribute('src') !== old",
                arg=first,
                timeout=TIMEOUT_MS,
            )
            assert result.get_attribute("src") != first
            before = page.locator("#input img").get_attribute("src")
            page.locator("#examples button.thumbnail-item").nth(1).click()  # the second example face
            page.wait_for_function(
                "old => document.querySelector('#input img').getAttribute('src') !== old",
                arg=before,
                timeout=TIMEOUT_MS,
            )
            page.locator(
                "#examples button.thumbnail-item"
            ).first.click()  # back to the uploaded face for the screenshot
            page.wait_for_function(
                "old => document.querySelector('#input img').getAttribute('src') === old",
                arg=before,
                timeout=TIMEOUT_MS,
            )
            page.get_by_role("button", name="New style", exact=True).wait_for()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    finally:
        server.terminate()
        status = server.wait(60)
    assert status == 0, log.read_text()
    assert not workdir.exists(), "the temporary folder outlived the app"
    assert screenshot.stat().st_size > 10_000
