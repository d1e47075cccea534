"""One decoder for every path: training sets, edit.py and baselines see the same pixels of a file."""

import warnings

import numpy as np
import pytest
import torch
from image_files import exif_rotated_jpeg, png_header, sixteen_bit_png, truncated_jpeg
from PIL import Image

from l2sae.data import ImageFolder
from l2sae.editing.placement import fit_to_model
from l2sae.evaluation.baselines import load_image
from l2sae.utils.errors import ImageFileError
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
