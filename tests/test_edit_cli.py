"""``edit.py`` / ``l2sae.editing.run`` end to end on tiny random-weight checkpoints."""

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_script
from edit_helpers import ROOT, unaligned_edit_config
from image_files import truncated_jpeg
from PIL import Image

from l2sae.editing.run import run
from l2sae.utils.errors import ConfigError, ImageFileError

GRID_SIZE = (4 * 64 + 5 * 2, 64 + 2 * 2)  # PIL (width, height) of input | mask | global | local


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


@pytest.fixture
def faces(tmp_path):
    """A folder with a grayscale PNG, an RGB JPEG and an RGBA WebP of different sizes."""
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (80, 40, 4), dtype=np.uint8)).save(folder / "alpha.webp", lossless=True)
    return folder


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_style_edit_of_a_folder_writes_edit_and_grid_at_input_size(checkpoints, faces, tmp_path):
    before = _snapshot(faces)
    out = tmp_path / "out"
    metrics = run(
        unaligned_edit_config(
            checkpoints, f"input={faces}", f"out={out}", "roi=[hair,skin]", "strength=1.5", "seed=3", "batch_size=2"
        )
    )
    assert metrics["images"] == 3 and metrics["seconds_per_image"] > 0
    for name in before:
        source = Image.open(faces / name)
        stem = Path(name).stem
        assert Image.open(out / f"{stem}_style_hair+skin.png").size == source.size
        assert Image.open(out / f"{stem}_style_hair+skin_grid.png").size == GRID_SIZE
    assert _snapshot(faces) == before  # inputs untouched
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_strength_zero_writes_the_input_back(checkpoints, faces, tmp_path):
    out = tmp_path / "out"
    run(unaligned_edit_config(checkpoints, f"input={faces / 'gray.png'}", f"out={out}", "strength=0"))
    written = np.asarray(Image.open(out / "gray_style_hair.png"))
    original = np.asarray(Image.open(faces / "gray.png").convert("RGB"))
    assert np.array_equal(written, original)


def test_a_null_seed_gives_every_batch_the_same_style_change(checkpoints, faces, tmp_path):
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("a.png", "b.png"):
        (twins / name).write_bytes((faces / "gray.png").read_bytes())
    out = tmp_path / "out"
    run(unaligned_edit_config(checkpoints, f"input={twins}", f"out={out}", "seed=null", "batch_size=1", "strength=2"))
    assert (out / "a_style_hair.png").read_bytes() == (out / "b_style_hair.png").read_bytes()


@pytest.mark.parametrize(
    "mode, partner, extra",
    [
        ("swap_style", "reference", ["precision=bf16"]),
        ("swap_structure", "donor", ["size_mode=center_crop", "keep_size=false"]),
    ],
)
def test_swap_modes(checkpoints, faces, tmp_path, mode, partner, extra):
    out = tmp_path / "out"
    run(
        unaligned_edit_config(
            checkpoints,
            f"input={faces / 'alpha.webp'}",
            f"out={out}",
            f"mode={mode}",
            f"{partner}={faces / 'rgb.jpg'}",
            "roi=eyes",
            *extra,
        )
    )
    size = (64, 64) if "keep_size=false" in extra else (40, 80)
    assert Image.open(out / f"alpha_{mode}_eyes.png").size == size
    assert Image.open(out / f"alpha_{mode}_eyes_grid.png").size == GRID_SIZE


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (["ckpt.smn=/nowhere/smn.pt"], FileNotFoundError, r"ckpt.smn: .*python train.py"),
        (["roi=[hair,beard]"], ConfigError, "roi: unknown region 'beard'"),
        (["roi=null"], ConfigError, "roi: expected a region name or a list of them, got None"),
        (["mode=swap_style"], ConfigError, "reference"),
        (["mode=swap_structure", "donor=/nowhere/donor.png"], FileNotFoundError, "donor.png"),
        (["batch_size=0"], ConfigError, "batch_size"),
        (["device=tpu"], ConfigError, "device"),
    ],
)
def test_bad_settings_fail_before_any_work(checkpoints, faces, tmp_path, overrides, error, message):
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        run(unaligned_edit_config(checkpoints, f"input={faces}", f"out={out}", *overrides))
    assert not out.exists()


def test_bad_inputs_name_the_file(checkpoints, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageFileError, match="empty"):
        run(unaligned_edit_config(checkpoints, f"input={empty}", f"out={out}"))
    (empty / "broken.jpg").write_text("not a jpeg")
    with pytest.raises(ImageFileError, match="broken.jpg"):
        run(unaligned_edit_config(checkpoints, f"input={empty}", f"out={out}"))
    with pytest.raises(ConfigError, match="input"):
        run(unaligned_edit_config(checkpoints, f"out={out}"))
    assert not out.exists()


def test_truncated_or_oversized_inputs_fail_before_any_output(checkpoints, faces, tmp_path):
    out = tmp_path / "out"
    truncated_jpeg(faces / "zz_cut.jpg")  # sorted last: every other input would be edited first
    with pytest.raises(ImageFileError, match=r"zz_cut\.jpg: not a readable image"):
        run(unaligned_edit_config(checkpoints, f"input={faces}", f"out={out}"))
    assert not out.exists()
    (faces / "zz_cut.jpg").unlink()
    with pytest.raises(ImageFileError, match=r"rgb\.jpg: 64 x 64 pixels is more than max_pixels=4000"):
        run(unaligned_edit_config(checkpoints, f"input={faces}", f"out={out}", "max_pixels=4000"))
    assert not out.exists()
    with pytest.raises(ConfigError, match="max_pixels: expected a positive integer"):
        run(unaligned_edit_config(checkpoints, f"input={faces}", f"out={out}", "max_pixels=0"))


def test_outputs_never_overwrite_inputs(checkpoints, faces):
    Image.new("RGB", (64, 64)).save(faces / "rgb_style_hair.png")  # the name rgb.jpg's edit would get
    before = _snapshot(faces)
    with pytest.raises(ImageFileError, match="rgb_style_hair.png"):
        run(unaligned_edit_config(checkpoints, f"input={faces}", f"out={faces}"))
    assert _snapshot(faces) == before


@pytest.mark.slow
def test_edit_py_command_line(checkpoints, faces, tmp_path):
    smn, smpn = checkpoints
    out = tmp_path / "out"
    arguments = [
        f"input={faces}",
        f"out={out}",
        "roi=nose",
        "align=none",
        "mode=style",
        "strength=1.5",
        "seed=3",
        f"ckpt.smn={smn}",
        f"ckpt.smpn={smpn}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    done = run_script(ROOT / "edit.py", arguments, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr  # the progress bar of a folder
    assert len(list(out.glob("*_style_nose.png"))) == 3
