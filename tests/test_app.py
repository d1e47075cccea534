"""``python app.py``: the page started on a free port, every handler called through gradio_client.

Tiny random-weight checkpoints; the page must give what the editor gives (pixel for pixel), keep
sessions apart, and answer bad uploads with a message. The browser test is in test_app_browser.py.
"""

import contextlib
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from image_files import png_header
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gradio_client = pytest.importorskip("gradio_client")

from l2sae.app import pipeline  # noqa: E402
from l2sae.app.page import SESSION_TTL_S, EditorPage  # noqa: E402
from l2sae.app.run import run, settings_from_config  # noqa: E402
from l2sae.app.server import AppSettings, RunningApp, draw_examples  # noqa: E402
from l2sae.editing import L2SAEEditor  # noqa: E402
from l2sae.utils.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIMITS = pipeline.UploadLimits(max_upload_mb=0.1, max_pixels=200_000)  # small, so the tests' files hit them
STYLE = ("all faces", ["hair"], "random style")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def editor(tiny_checkpoints):
    return L2SAEEditor.from_checkpoints(*tiny_checkpoints)


@pytest.fixture(scope="module")
def app(editor):
    for attempt in range(3):
        try:
            running = RunningApp(editor, AppSettings(port=free_port(), limits=LIMITS, num_examples=2))
            break
        except ValueError as error:  # gradio's 3 s probe of the new server timed out on a very busy machine
            if "localhost is not accessible" not in str(error) or attempt == 2:
                raise
    yield running
    running.close()
    assert not running.workdir.exists(), "the temporary folder outlived the app"


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_download_folders():
    """gradio_client (2.7) downloads each result through a folder <temp>/<40 hex digits> that it leaves behind,
    empty (~95 per run of this module): the empty ones made meanwhile are removed."""
    temp = Path(tempfile.gettempdir())
    before = set(temp.iterdir())
    yield
    for folder in set(temp.iterdir()) - before:
        if re.fullmatch("[0-9a-f]{40}", folder.name) and folder.is_dir():
            with contextlib.suppress(OSError):  # not empty: not ours to remove
                folder.rmdir()


@pytest.fixture
def client(app, tmp_path):
    """A fresh browser session (gradio_client keeps one session per Client)."""
    return gradio_client.Client(app.url, verbose=False, download_files=str(tmp_path / "downloads"))


@pytest.fixture(scope="module")
def faces(app):
    return sorted((app.workdir / "examples").glob("*.png"))


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def upload(client, path, *settings, endpoint="/upload"):
    settings = settings or (*STYLE, 1.0, 0)
    return client.predict(gradio_client.handle_file(str(path)), *settings, api_name=endpoint)


def editor_result(editor, path, rois, mode="style", strength=1.0, seed=0, partner=None, faces="all") -> np.ndarray:
    """What the editor itself gives for the photo at ``path``."""
    partners = {"reference": partner} if mode == "swap_style" else {"donor": partner}
    result = editor.edit_photo(str(path), rois, mode=mode, strength=strength, seed=seed, faces=faces, **partners)
    return np.asarray(result.image)


def test_upload_edits_like_the_editor_and_a_strength_change_reuses_the_codes(app, client, editor, faces):
    assert app.url.startswith("http://127.0.0.1:")
    input_view, face_update, overlay, result, (before, after), download, status = upload(client, faces[0])
    assert np.array_equal(pixels(input_view), pixels(faces[0]))
    assert face_update["value"] == "all faces" and ["face 0", "face 0"] in face_update["choices"]
    assert np.array_equal(pixels(result), editor_result(editor, faces[0], ["hair"]))
    assert np.array_equal(pixels(before), pixels(faces[0])) and np.array_equal(pixels(after), pixels(result))
    assert (
        Path(download).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and Path(download).name == f"{faces[0].stem}_style_hair.png"
    )
    assert np.array_equal(pixels(download), pixels(result))
    assert "hair" in status and " s**" in status
    assert pixels(overlay).shape == pixels(faces[0]).shape

    with counted_calls(editor) as calls:
        started = time.perf_counter()
        _, stronger, _, _, status = client.predict(*STYLE, 2.5, 0, api_name="/edit")
        seconds = time.perf_counter() - started
    assert calls == ["smn.decode"], "a strength change costs one SMN decode, no encode and no mask decode"
    assert np.array_equal(pixels(stronger), editor_result(editor, faces[0], ["hair"], strength=2.5))
    assert not np.array_equal(pixels(stronger), pixels(result))
    codes = editor.encode(torch.zeros(1, 3, 64, 64))
    structure, texture = codes.smn_structure.to(editor.dtype), codes.smn_texture.to(editor.dtype)
    with torch.inference_mode():
        one_decode = min(_timed(lambda: editor.smn.decode(structure, texture)) for _ in range(3))
    print(  # the figure (asserted at 256 px in bench/app_latency.py; tiny networks: HTTP dominates)
        f"strength change through the page: {seconds:.3f} s; one SMN decode: {one_decode:.3f} s "
        f"({seconds / one_decode:.1f}x)"
    )

    _, unchanged, *_ = client.predict(*STYLE, 0.0, 0, api_name="/edit")
    assert np.array_equal(pixels(unchanged), pixels(faces[0]))


@contextmanager
def counted_calls(editor):
    """The names of the editor's network calls (encode, decode, sliced decode) made inside the block."""
    calls = []
    names = [(network, name) for network in ("smn", "smpn") for name in ("encode", "decode", "decode_sliced")]
    for network, name in names:
        method = getattr(getattr(editor, network), name)
        setattr(getattr(editor, network), name, partial(_record, calls, f"{network}.{name}", method))
    try:
        yield calls
    finally:
        for network, name in names:
            delattr(getattr(editor, network), name)


def _record(calls, label, method, *args, **kwargs):
    calls.append(label)
    return method(*args, **kwargs)


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def test_regions_seed_and_new_style(client, editor, faces):
    upload(client, faces[1])
    _, result, *_ = client.predict("all faces", ["hair", "skin"], "random style", 1.5, 7, api_name="/edit")
    assert np.array_equal(pixels(result), editor_result(editor, faces[1], ["hair", "skin"], strength=1.5, seed=7))
    seeds = {client.predict(api_name="/new_style") for _ in range(3)}
    assert len(seeds) > 1 and all(isinstance(seed, int) and 0 <= seed < 2**31 for seed in seeds)
    with pytest.raises(gradio_client.exceptions.AppError, match="at least one region"):
        client.predict("all faces", [], "random style", 1.0, 0, api_name="/edit")


@pytest.mark.parametrize(("mode", "label", "endpoint"), [
    ("swap_style", "style from a reference", "/reference"),
    ("swap_structure", "structure from a donor", "/donor"),
])  # fmt: skip
def test_swaps_take_the_reference_or_donor(client, editor, faces, mode, label, endpoint):
    from l2sae.app.page import PARTNER_MODES  # here: collecting this module imports no Gradio (~2 s per worker)

    upload(client, faces[0])
    *_, status = client.predict("all faces", ["hair"], label, 1.0, 0, api_name="/mode")
    assert f"Upload a {PARTNER_MODES[mode]}" in status  # and nothing is edited yet
    outputs = upload(client, faces[1], "all faces", ["hair"], label, 1.0, 0, endpoint=endpoint)
    result = outputs[1]
    assert np.array_equal(pixels(result), editor_result(editor, faces[0], ["hair"], mode, partner=faces[1]))


def test_sessions_never_see_each_others_photos(app, faces, tmp_path):
    alice, bob = (gradio_client.Client(app.url, verbose=False, download_files=str(tmp_path / n)) for n in "ab")
    with pytest.raises(gradio_client.exceptions.AppError, match="Upload a photo"):
        bob.predict(*STYLE, 1.0, 0, api_name="/edit")
    first = upload(alice, faces[0])[3]
    upload(bob, faces[1])
    again = alice.predict(*STYLE, 1.0, 0, api_name="/edit")[1]
    assert np.array_equal(pixels(again), pixels(first))
    assert not np.array_equal(pixels(bob.predict(*STYLE, 1.0, 0, api_name="/edit")[1]), pixels(first))


def test_uploads_land_in_the_app_temp_folder(app, client, faces):
    upload(client, faces[0])
    uploaded = list((app.workdir / "gradio").rglob(faces[0].name))
    assert uploaded, "uploads must go to the app's own temporary folder"


def _write_bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.txt"
    text.write_text("not a face")
    whole = folder / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(whole)
    corrupt = folder / "cut.png"
    corrupt.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    wide = folder / "wide.png"
    Image.new("RGB", (500, 500), (90, 120, 150)).save(wide)  # 250 000 pixels: over the test's max_pixels
    heavy = folder / "heavy.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 240, 3), dtype=np.uint8)).save(heavy)  # 170 kB
    faceless = folder / "wall.png"
    Image.new("RGB", (120, 90), (200, 190, 170)).save(faceless)
    return {"text": text, "corrupt": corrupt, "wide": wide, "heavy": heavy, "faceless": faceless}


@pytest.mark.parametrize(("kind", "message"), [
    ("text", "notes.txt is not an image"),
    ("corrupt", "cut.png could not be decoded"),
    ("wide", "500 x 500 px"),
    ("faceless", "wall.png: no face found"),
])  # fmt: skip
def test_bad_uploads_are_a_message_on_the_page(client, tmp_path, kind, message):
    path = _write_bad_files(tmp_path / "bad")[kind]
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        upload(client, path)


def test_files_over_max_upload_mb_are_refused(client, tmp_path):
    heavy = _write_bad_files(tmp_path / "bad")["heavy"]
    with pytest.raises(Exception, match="exceeds the maximum file size"):  # Gradio refuses the upload itself
        upload(client, heavy)
    with pytest.raises(pipeline.PhotoError, match="heavy.png is 0.2 MB; this page accepts photos up to 0.1 MB"):
        pipeline.open_upload(heavy, LIMITS)  # and the page's own check, for files that arrive otherwise


def test_a_long_upload_name_gives_result_files_under_the_name_limit(editor, tmp_path):
    """Issue: a long upload stem with every region made a result name over 255 bytes ("File name too long")."""
    examples = draw_examples(tmp_path / "examples", editor.image_size, 1)
    page = EditorPage(editor, LIMITS, tmp_path / "work", examples)
    rois = list(editor.slicing.roi_names)
    for stem in ("a" * 200, "é" * 110):
        upload = tmp_path / f"{stem}.png"
        upload.write_bytes(examples[0].read_bytes())
        result = Path(page.upload(str(upload), None, "all faces", rois, "random style", 1.0, 0)[4])
        assert result.name == f"{stem.encode()[:80].decode()}_style_{'+'.join(rois)}.png"
        assert np.array_equal(pixels(result), editor_result(editor, upload, rois))


def test_gradio_removes_its_cached_copies_after_a_session_lifetime(editor, tmp_path):
    """Issue: every edit left a full-size PNG in Gradio's cache for as long as the app ran."""
    demo = EditorPage(editor, LIMITS, tmp_path, []).build()
    assert demo.delete_cache == (SESSION_TTL_S // 4, SESSION_TTL_S) == (2700, 3 * 3600)


def test_a_busy_port_is_a_config_error_naming_it(editor):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^port: {port} is in use on 127\.0\.0\.1 .*choose another with port=N"):
            RunningApp(editor, AppSettings(port=port, limits=LIMITS, num_examples=1))


def test_no_face_found_says_what_to_do_on_the_page(editor):
    """Issue: the message told users to set align=none, which the page has no control for."""
    with pytest.raises(pipeline.PhotoError) as info:
        pipeline.prepare(editor, Image.new("RGB", (120, 90), (200, 190, 170)), "wall.png")
    message = str(info.value)
    assert message.startswith("wall.png: no face found; upload a photo with a frontal face at least ~40 px wide")
    assert "exactly 64 x 64 px" in message and "align" not in message


def test_a_decompression_bomb_or_an_eps_file_is_a_message_naming_it(tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(pipeline.PhotoError, match=r"bomb\.png is 10000\.0 megapixels; .* up to 0\.2 megapixels"):
        pipeline.open_upload(bomb, LIMITS)
    generous = pipeline.UploadLimits(max_upload_mb=0.1, max_pixels=300_000_000)  # above Pillow's own limit
    with pytest.raises(pipeline.PhotoError, match=r"up to 178\.957 megapixels \(the image library's limit\)"):
        pipeline.open_upload(bomb, generous)
    eps = tmp_path / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(pipeline.PhotoError, match=r"drawing\.png is not an image; upload a PNG, JPEG or WebP"):
        pipeline.open_upload(eps, LIMITS)


def _config(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("app", overrides=list(overrides))


def test_config_defaults_are_local_and_checked(tmp_path):
    settings = settings_from_config(_config())
    assert (settings.host, settings.port, settings.share) == ("127.0.0.1", 7860, False)
    assert settings.limits == pipeline.UploadLimits(max_upload_mb=20, max_pixels=40_000_000)
    with pytest.raises(ConfigError, match="examples_dir"):
        settings_from_config(_config(f"examples_dir={tmp_path / 'missing'}"))
    with pytest.raises(ConfigError, match="max_upload_mb: expected a positive number of MiB"):
        settings_from_config(_config("max_upload_mb=0"))
    assert settings_from_config(_config("max_upload_mb=0.5")).limits.max_upload_mb == 0.5
    with pytest.raises(ConfigError, match="max_pixels: expected a positive integer, got 0"):
        settings_from_config(_config("max_pixels=0"))


def test_without_checkpoints_it_names_the_training_command(tmp_path):
    cfg = _config(f"ckpt.smn={tmp_path / 'smn.pt'}", f"ckpt.smpn={tmp_path / 'smpn.pt'}")
    with pytest.raises(FileNotFoundError, match="python train.py"):
        run(cfg)


def test_a_photo_with_two_faces_lists_both_and_edits_the_chosen_one(client, editor, tmp_path):
    """The astronaut twice on one canvas: each face found, outlined, chosen alone, pasted back in place."""
    data = pytest.importorskip("skimage.data")
    astronaut = Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS)
    canvas = Image.new("RGB", (512, 256))
    canvas.paste(astronaut, (0, 0))
    canvas.paste(astronaut.transpose(Image.FLIP_LEFT_RIGHT), (256, 0))
    photo = tmp_path / "twins.jpg"
    canvas.save(photo, quality=85)
    outlined, face_update, *_ = upload(client, photo)
    assert [choice for choice, _ in face_update["choices"]] == ["all faces", "face 0", "face 1"]
    assert not np.array_equal(pixels(outlined), pixels(photo))  # alignment squares drawn on the input
    _, both, *_ = client.predict("all faces", ["hair"], "random style", 2.0, 0, api_name="/edit")
    assert np.array_equal(pixels(both), editor_result(editor, photo, ["hair"], strength=2.0))
    _, right, *_ = client.predict("face 1", ["hair"], "random style", 2.0, 0, api_name="/edit")
    assert np.array_equal(pixels(right), editor_result(editor, photo, ["hair"], strength=2.0, faces=1))
    assert np.array_equal(pixels(right)[:, :200], pixels(photo)[:, :200])  # the left face is left alone


def test_run_builds_the_editor_from_the_config_and_serves_until_stopped(tiny_checkpoints, monkeypatch):
    """``python app.py``'s path up to the server (the browser test runs the real command)."""
    served = {}

    class StartedApp:  # stands in for RunningApp: no server, returns as if Ctrl-C came at once
        url, share_url = "http://127.0.0.1:7860/", None

        def __init__(self, editor, settings):
            served.update(editor=editor, settings=settings)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            pass

        def wait(self):
            pass

    monkeypatch.setattr("l2sae.app.run.RunningApp", StartedApp)
    smn, smpn = tiny_checkpoints
    assert run(_config(f"ckpt.smn={smn}", f"ckpt.smpn={smpn}", "precision=32")) == {"url": StartedApp.url}
    assert served["editor"].image_size == 64 and served["editor"].precision == "32"
    assert (served["settings"].host, served["settings"].port) == ("127.0.0.1", 7860)


def test_a_photo_that_fails_to_load_is_not_replaced_by_the_previous_one(client, faces, tmp_path):
    upload(client, faces[0])
    bad = _write_bad_files(tmp_path / "bad")["faceless"]
    with pytest.raises(gradio_client.exceptions.AppError, match="no face found"):
        upload(client, bad)
    with pytest.raises(gradio_client.exceptions.AppError, match="Upload a photo"):  # not the earlier photo
        client.predict(*STYLE, 2.0, 0, api_name="/edit")
    loaded = upload(client, faces[1], "all faces", [], "random style", 1.0, 0)  # no region ticked
    assert loaded[-1] == f"Loaded {faces[1].name}: choose a region."


def test_face_numbers_are_no_wider_than_their_square_and_stay_in_the_photo():
    from types import SimpleNamespace

    corners = np.array([[930.0, 300], [930, 360], [990, 360], [990, 300]])  # a 60 px square at the right edge
    face = SimpleNamespace(quad=corners, status="edited", side=60.0)
    photo = SimpleNamespace(image=Image.new("RGB", (1000, 500), (0, 0, 0)), faces=[face],
                            aligned=SimpleNamespace(align="ffhq"))  # fmt: skip
    drawn = np.asarray(pipeline.outlined(photo)).any(-1)
    rows, columns = np.nonzero(drawn[:298])  # the label, above the square
    assert len(columns) and rows.max() - rows.min() <= 60 / 4 + 4  # font ~ a quarter of the square's side
    assert columns.max() < 999 and columns.min() >= 900  # all of "face 0" inside the photo, near its face
