"""One decoder for every path: training sets, edit.py and baselines see the same pixels of a file."""

import subprocess
import warnings

import numpy as np
import pytest
import torch
from image_files import exif_rotated_jpeg, png_header, sixteen_bit_png, truncated_jpeg
from PIL import Image, ImageFile

from l2sae.data import ImageFolder
from l2sae.editing.placement import fit_to_model
from l2sae.evaluation.baselines import load_image
from l2sae.utils.errors import ImageFileError, ImageTooLargeError
from l2sae.utils.images import check_image, open_image, read_image

SIZE = 24


def _training_and_editing_views(path, size=SIZE):
    """The pixels the training set, the evaluation's baseline reader and edit.py feed the model for ``path``."""
    training = ImageFolder(path.parent, size)[0]["image"]
    baseline = load_image(path, size)
    editing, _ = fit_to_model(read_image(path), size)
    return training, baseline, editing


def test_exif_rotated_jpeg_gives_the_same_upright_pixels_everywhere(tmp_path):
    stored = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    stored[:, : SIZE // 3] = (250, 250, 250)  # a bright left third; upright it is the top third
    path = exif_rotated_jpeg(tmp_path / "face.jpg", stored)
    training, baseline, editing = _training_and_editing_views(path)
    assert torch.equal(training, editing) and torch.equal(baseline, editing)
    with Image.open(path) as raw:
        upright = np.asarray(raw.convert("RGB").transpose(Image.Transpose.ROTATE_270))  # 90 degrees clockwise
    assert torch.equal(editing, torch.from_numpy(upright.copy()).permute(2, 0, 1).float() / 127.5 - 1)
    assert editing[:, : SIZE // 4].mean() > 0.9 and editing[:, -SIZE // 4 :].mean() < -0.9


def test_sixteen_bit_png_gives_the_same_rescaled_pixels_everywhere(tmp_path):
    values = np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint16)
    path = sixteen_bit_png(tmp_path / "deep.png", values)
    training, baseline, editing = _training_and_editing_views(path)
    assert torch.equal(training, editing) and torch.equal(baseline, editing)
    expected = torch.from_numpy(np.round(values / 257.0)).float() / 127.5 - 1
    assert torch.equal(editing, expected.expand(3, -1, -1))


def test_truncated_jpeg_is_refused_when_checked(tmp_path):
    path = truncated_jpeg(tmp_path / "cut.jpg")
    with Image.open(path) as image:
        image.verify()  # the header alone looks fine
    with pytest.raises(ImageFileError, match=r"cut\.jpg: not a readable image .*truncated"):
        check_image(path)


def test_huge_header_is_refused_before_decoding(tmp_path, monkeypatch):
    path = png_header(tmp_path / "huge.png", 10_000, 10_000)
    assert path.stat().st_size < 1000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "convert", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageFileError, match=r"huge\.png: 10000 x 10000 pixels is more than max_pixels=40000000"):
            read_image(path)
        with pytest.raises(ImageFileError, match=r"huge\.png: .* max_pixels=5000"):
            ImageFolder(tmp_path, 16, max_pixels=5_000)[0]


def test_max_pixels_is_configurable(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (100, 50), (255, 0, 0)).save(path)
    with pytest.raises(ImageFileError, match="max_pixels=4999"):
        open_image(path, max_pixels=4999)
    assert open_image(path, max_pixels=5000).size == (100, 50)
    assert open_image(path, max_pixels=None).size == (100, 50)


def test_other_formats_never_reach_a_decoder_whatever_their_name(tmp_path, monkeypatch):
    """An EPS file named .png would make Pillow run Ghostscript; BMP and GIF are not read either."""
    from PIL import EpsImagePlugin

    eps = tmp_path / "face.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with Image.open(eps) as image:
        assert image.format == "EPS"  # what Pillow would decode it as, unrestricted
    commands = []

    def no_ghostscript(command, *args, **kwargs):
        commands.append(command)
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs")
    monkeypatch.setattr(subprocess, "check_call", no_ghostscript)
    bmp, gif = tmp_path / "bmp.png", tmp_path / "anim.jpg"
    Image.new("RGB", (8, 8)).save(bmp, format="BMP")
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    for path in (eps, bmp, gif):
        with pytest.raises(
            ImageFileError, match=rf"{path.name}: not a readable image \(not a PNG, JPEG or WebP file\)"
        ):
            open_image(path)
    assert commands == []


def test_a_header_over_the_limits_is_refused_before_decoding_naming_its_size(tmp_path, monkeypatch):
    """max_pixels, then Pillow's decompression-bomb limit (a process-wide setting, never changed here)."""
    pillow_limit = Image.MAX_IMAGE_PIXELS

    def decoded(self, *args, **kwargs):
        raise AssertionError("decoding started")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    wide = png_header(tmp_path / "wide.png", 9_000, 5_000)
    with pytest.raises(ImageTooLargeError, match=r"wide\.png: 9000 x 5000 pixels is more than max_pixels=40000000"):
        open_image(wide)
    bomb = png_header(tmp_path / "bomb.png", 100_000, 100_000)
    limit = rf"pixels is more than Pillow's decompression-bomb limit of {2 * pillow_limit}; use a smaller image"
    with pytest.raises(ImageTooLargeError, match=rf"bomb\.png: 10000000000 {limit}"):
        open_image(bomb)
    big = png_header(tmp_path / "big.png", 20_000, 10_000)  # 200 megapixels: over twice Pillow's 89.5
    for max_pixels in (300_000_000, None):  # Pillow's limit caps a larger max_pixels, or none
        with pytest.raises(ImageTooLargeError, match=rf"big\.png: 200000000 {limit}"):
            open_image(big, max_pixels=max_pixels)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit


def test_a_corrupt_exif_block_leaves_the_image_unrotated(tmp_path, caplog):
    pixels = np.random.default_rng(0).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    garbage = b"Exif\x00\x00" + bytes(range(7, 40))  # not a TIFF header
    for suffix in ("png", "webp"):
        path = tmp_path / f"face.{suffix}"
        Image.fromarray(pixels).save(path, exif=garbage, lossless=True)
        with caplog.at_level("WARNING", logger="l2sae.utils.images"):
            image = open_image(path)
        assert np.array_equal(np.asarray(image), pixels)
        assert f"face.{suffix}: corrupt EXIF block" in caplog.text
