"""Reading, fitting, pasting back and writing images."""

import numpy as np
import pytest
import torch
from PIL import Image

from l2sae.editing.placement import Placement, fit_to_model, paste_back
from l2sae.utils.errors import ImageFileError
from l2sae.utils.files import atomic_write_text
from l2sae.utils.images import check_image, list_images, read_image, write_image


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_reads_rgb_formats_into_unit_range(tmp_path, suffix):
    array = np.full((20, 30, 3), (255, 0, 128), dtype=np.uint8)
    image = read_image(_save(tmp_path / f"face{suffix}", array, quality=100))
    assert image.shape == (3, 20, 30) and image.dtype == torch.float32
    assert torch.allclose(image[:, 10, 15], torch.tensor([1.0, -1.0, 128 / 127.5 - 1]), atol=0.05)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    array = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    image = read_image(_save(tmp_path / "gray.png", array))
    assert image.shape == (3, 8, 8)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert image[0, 0, 0] == -1.0


def test_sixteen_bit_grayscale_is_rescaled(tmp_path):
    array = np.full((4, 4), 65535, dtype=np.uint16)
    image = read_image(_save(tmp_path / "deep.png", array))
    assert torch.allclose(image, torch.ones(3, 4, 4))


def test_rgba_is_put_on_white(tmp_path):
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[:2] = (0, 0, 0, 255)  # opaque black top half, transparent bottom half
    image = read_image(_save(tmp_path / "alpha.png", array))
    assert torch.equal(image[:, :2], -torch.ones(3, 2, 4))
    assert torch.equal(image[:, 2:], torch.ones(3, 2, 4))


def test_non_image_and_unreadable_files_name_the_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageFileError, match="notes.png"):
        read_image(text)
    with pytest.raises(ImageFileError, match="notes.png"):
        check_image(text)
    truncated = tmp_path / "cut.png"
    _save(tmp_path / "whole.png", np.random.randint(0, 255, (64, 64, 3), dtype=np.uint8))
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    with pytest.raises(ImageFileError, match="cut.png"):
        read_image(truncated)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_list_images_of_a_folder(tmp_path):
    for name in ("b.PNG", "a.jpg", ".hidden.png", "c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]
    assert list_images(tmp_path / "a.jpg") == [tmp_path / "a.jpg"]


def test_empty_folder_and_missing_path_are_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageFileError, match=str(tmp_path)):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")


def test_fit_resize_and_center_crop():
    image = torch.linspace(-1, 1, 40).expand(3, 20, 40).contiguous()
    view, placement = fit_to_model(image, 16, "resize")
    assert view.shape == (3, 16, 16) and placement == Placement((20, 40), (0, 0, 20, 40))
    view, placement = fit_to_model(image, 16, "center_crop")
    assert view.shape == (3, 16, 16) and placement.box == (0, 10, 20, 20)
    # the centre crop sees only the middle columns
    assert view.min() > image[:, :, 9].min() and view.max() < image[:, :, 30].max()
    with pytest.raises(ValueError, match="size_mode"):
        fit_to_model(image, 16, "stretch")


@pytest.mark.parametrize("mode", ["resize", "center_crop"])
def test_paste_back_keeps_untouched_pixels_exactly(mode):
    original = torch.rand(3, 48, 80) * 2 - 1
    view, placement = fit_to_model(original, 32, mode)
    edited = view.clone()
    edited[:, :8, :8] = 1.0  # edit only the top-left corner of the view
    restored = paste_back(original, view, edited, placement)
    assert restored.shape == original.shape
    top, left = placement.box[:2]
    changed = (restored != original).any(dim=0)
    assert changed[top : top + 8, left : left + 8].any()
    assert not changed[:, left + 40 :].any() and not changed[top + 30 :].any()
    # an unedited view gives back the original bit for bit
    assert torch.equal(paste_back(original, view, view, placement), original)


def test_atomic_writes_take_the_longest_names_the_file_system_takes(tmp_path):
    """Issue: the temporary name added ~22 characters, so a valid 240-character name failed (ENAMETOOLONG)."""
    image = torch.ones(3, 4, 4)
    names = [f"{'a' * 250}.png", f"{'é' * 125}.png"]  # 254 bytes each; the limit is 255
    for name in names:
        assert torch.equal(read_image(write_image(image, tmp_path / name)), image)
    atomic_write_text(tmp_path / f"{'b' * 250}.txt", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, f"{'b' * 250}.txt"])  # no temporary left


def test_write_image_round_trip_is_atomic(tmp_path):
    image = torch.rand(3, 12, 10) * 2 - 1
    path = write_image(image, tmp_path / "sub" / "out.png")
    assert torch.allclose(read_image(path), image, atol=1 / 127.5)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temporary left
    with pytest.raises(ImageFileError, match="out.gif"):
        write_image(image, tmp_path / "out.gif")
