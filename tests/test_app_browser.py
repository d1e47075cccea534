"""The real page in headless Chromium (the OS package) driven by Playwright: upload, slide, see the change.

    APP_CKPT_DIR=logs/latest APP_SCREENSHOT=docs/app_screenshot.png python -m pytest -m slow tests/test_app_browser.py

renders the README's screenshot with trained networks (by default: tiny random ones, screenshot in tmp_path).
"""

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

from l2sae.app.server import AppSettings, RunningApp  # noqa: E402
from l2sae.editing import L2SAEEditor  # noqa: E402

TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_upload_slide_and_see_the_result_change(tiny_checkpoints, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    folder = os.environ.get("APP_CKPT_DIR")
    checkpoints = (Path(folder) / "smn.pt", Path(folder) / "smpn.pt") if folder else tiny_checkpoints
    screenshot = Path(os.environ.get("APP_SCREENSHOT", tmp_path / "app_screenshot.png"))
    editor = L2SAEEditor.from_checkpoints(*checkpoints)
    with RunningApp(editor, AppSettings(port=free_port())) as app, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url, timeout=TIMEOUT_MS)
        face = app.workdir / "examples" / "synthetic_face_1.png"
        page.locator("#photo input[type=file]").set_input_files(str(face))
        status = page.locator("#status")
        status.get_by_text("Edited hair (strength 1, seed 0)").wait_for(timeout=TIMEOUT_MS)
        result = page.locator("#result img")
        first = result.get_attribute("src")

        page.locator("#strength input[type=range]").fill("2.5")
        status.get_by_text("strength 2.5").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(
            "old => document.querySelector('#result img').getAttribute('src') !== old", arg=first, timeout=TIMEOUT_MS
        )
        assert result.get_attribute("src") != first
        page.get_by_role("button", name="New style", exact=True).wait_for()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.stat().st_size > 10_000
