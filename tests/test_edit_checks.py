"""Settings and inputs the editor refuses (issue 17 items 3, 4, 9, 14): non-finite strengths and pixels, seeds
out of range, unchecked values in checkpoints, files in the wrong slot, faces of another editor."""

import math
import os

import numpy as np
import pytest
import torch
from cli_helpers import run_script
from edit_helpers import ROOT, unaligned_edit_config
from PIL import Image
from tiny_networks import TINY_SLICING

from l2sae.editing import L2SAEEditor
from l2sae.editing.run import run
from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
from l2sae.utils.errors import ConfigError

FIXTURE = ROOT / "tests" / "fixtures" / "sae_tiny" / "latest_checkpoint.pth"


@pytest.fixture(scope="module")
def editor(tiny_checkpoints):
    return L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32")


@pytest.fixture
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1


@pytest.mark.parametrize("strength", [math.nan, math.inf, -math.inf, True, "1"])
def test_a_strength_that_is_not_a_finite_number_is_refused(editor, images, strength):
    with pytest.raises(ConfigError, match="strength: expected a finite number"):
        editor.edit_style(images, "hair", strength=strength, seed=0)


@pytest.mark.parametrize("seed", [-1, 2**63, True, 1.5])
def test_a_seed_outside_0_to_2_63_is_refused(editor, images, seed):
    with pytest.raises(ConfigError, match=r"seed: expected an integer from 0 to 2\^63-1"):
        editor.edit_style(images, "hair", strength=1.0, seed=seed)
    editor.edit_style(images[:1], "hair", strength=1.0, seed=2**63 - 1)  # the largest seed works


@pytest.mark.parametrize(
    "setting, message",
    [("strength=nan", "strength"), ("seed=-1", "seed"), (f"seed={2**63}", "seed")],
)
def test_edit_py_refuses_them_before_any_work(tiny_checkpoints, tmp_path, setting, message):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=f"^{message}: "):
        run(unaligned_edit_config(tiny_checkpoints, f"input={tmp_path}", f"out={out}", setting))
    assert not out.exists()


def test_non_finite_pixels_and_images_outside_the_range_are_refused(editor, images):
    poisoned = images.clone()
    poisoned[0, 1, 5, 5] = math.nan
    with pytest.raises(ValueError, match="images: 1 values are NaN or infinite"):
        editor.edit_style(poisoned, "hair", seed=0)
    with pytest.raises(ValueError, match=r"images: values from .* expected images in \[-1, 1\]"):
        editor.edit_style((images + 1) * 127.5, "hair", seed=0)
    with pytest.raises(ValueError, match="reference: 1 values are NaN"):
        editor.swap_style(images, poisoned[:1], "hair")


def test_an_empty_batch_and_a_donor_list_get_clear_errors(editor, images):
    with pytest.raises(ValueError, match="images: an empty batch"):
        editor.edit_style(images[:0], "hair", seed=0)
    with pytest.raises(ValueError, match="donor: expected images B x 3 x H x W .* got list"):
        editor.swap_structure(images, [images[0]], "hair")


def test_encoded_faces_of_another_editor_are_refused(tiny_checkpoints, editor, images):
    other = L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32", mask_threshold=0.5)
    faces = other.encode(images, rois="hair")
    with pytest.raises(ValueError, match="images: these EncodedFaces were encoded by another L2SAEEditor"):
        editor.masks(faces, "hair")
    with pytest.raises(ValueError, match="reference: these EncodedFaces"):
        editor.swap_style(images, faces, "hair")
    assert torch.equal(other.masks(faces, "hair"), other.masks(images, "hair"))


@pytest.mark.parametrize("name", ["kernel_size", "seam_kernel_size"])
def test_a_matting_kernel_wider_than_the_images_is_refused_naming_the_setting(tiny_checkpoints, images, name):
    with pytest.raises(ConfigError, match=rf"editor\.matting\.{name}: 129 .* 64 px images.* at most 127"):
        L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32", matting={name: 129})
    widest = L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32", matting={name: 127})
    assert widest.edit_style(images, "hair", seed=0).images.shape == images.shape
    with pytest.raises(ConfigError, match=rf"editor\.matting\.{name}: expected an odd positive integer, got 4"):
        L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32", matting={name: 4})


def _smpn_file(path, **extra):
    torch.manual_seed(2)
    network = SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False)
    return save_sae(network, path, extra={"kind": "smpn", "slicing": TINY_SLICING.to_dict(), **extra})


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"image_size": 20000}, "image_size: expected an image side from 1 to 4096"),
        ({"image_size": -5}, "image_size: expected an image side"),
        ({"image_size": 60}, "image_size: image side 60 is not divisible"),
        ({"mask_threshold": math.nan}, "mask_threshold: expected a number from 0 up to"),
        ({"mask_threshold": 2.0}, "mask_threshold: expected a number from 0 up to"),
    ],
)
def test_values_recorded_in_a_checkpoint_are_checked_naming_the_file(tiny_checkpoints, tmp_path, extra, message):
    smpn = _smpn_file(tmp_path / "smpn.pt", **extra)
    with pytest.raises(ConfigError, match=f"smpn.pt: {message}"):
        L2SAEEditor.from_checkpoints(tiny_checkpoints[0], smpn)


def test_a_mask_threshold_setting_that_is_not_a_number_in_0_1_is_refused(tiny_checkpoints):
    for bad in (math.nan, 1.0, -0.1):
        with pytest.raises(ConfigError, match="editor.mask_threshold: expected a number"):
            L2SAEEditor.from_checkpoints(*tiny_checkpoints, mask_threshold=bad)


def test_an_smpn_file_in_the_smn_slot_is_refused_by_its_recorded_kind(tiny_checkpoints):
    smn, smpn = tiny_checkpoints
    with pytest.raises(ConfigError, match=r"ckpt.smn: .*smpn.pt is an SMPN"):
        L2SAEEditor.from_checkpoints(smpn, smpn)
    with pytest.raises(ConfigError, match=r"ckpt.smpn: .*smn.pt is an SMN"):
        L2SAEEditor.from_checkpoints(smn, smn, slicing=TINY_SLICING)


def test_an_official_sae_file_without_d_weights_takes_the_image_size_given(tiny_checkpoints, tmp_path):
    smpn = _smpn_file(tmp_path / "smpn.pt")  # records no image size
    with pytest.raises(ConfigError, match="editor.image_size: .*latest_checkpoint.pth does not record the image size"):
        L2SAEEditor.from_checkpoints(FIXTURE, smpn)
    editor = L2SAEEditor.from_checkpoints(FIXTURE, smpn, image_size=64)
    assert editor.image_size == 64 and editor.smn.config.crop_size == 64


def test_an_out_that_is_a_file_or_unwritable_fails_before_the_networks_load(tiny_checkpoints, tmp_path, monkeypatch):
    """Issue 17.14: out= failed with a raw OSError after the networks were loaded and a batch edited."""
    face = tmp_path / "face.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(face)
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")

    def no_loading(*args, **kwargs):
        raise AssertionError("the networks were loaded before out= was checked")

    monkeypatch.setattr(L2SAEEditor, "from_checkpoints", no_loading)
    with pytest.raises(ConfigError, match="out: .*taken.txt is a file, not a folder"):
        run(unaligned_edit_config(tiny_checkpoints, f"input={face}", f"out={taken}"))
    with pytest.raises(ConfigError, match="out: cannot write into .*taken.txt/edits"):
        run(unaligned_edit_config(tiny_checkpoints, f"input={face}", f"out={taken / 'edits'}"))


def _entry_point(script, *overrides, cwd, full_error):
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env.update({"HYDRA_FULL_ERROR": "1"} if full_error else {})
    return run_script(ROOT / script, [*overrides, f"hydra.run.dir={cwd / 'hydra'}"], cwd=cwd, env=env, timeout=120)


@pytest.mark.slow
def test_the_clis_print_the_projects_errors_as_one_line(tiny_checkpoints, tmp_path):
    """Issue 17.15: a bad setting is one "error: ..." line and exit status 1; HYDRA_FULL_ERROR=1 shows the traceback."""
    smn, smpn = tiny_checkpoints
    done = _entry_point(
        "edit.py",
        f"input={tmp_path}",
        "strength=nan",
        f"ckpt.smn={smn}",
        f"ckpt.smpn={smpn}",
        cwd=tmp_path,
        full_error=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: strength: expected a finite number, got nan"
    assert "Traceback" not in done.stderr
    done = _entry_point("train.py", "ckpt_path=x.ckpt", cwd=tmp_path, full_error=True)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ConfigError: ckpt_path: x.ckpt is one stage's checkpoint" in done.stderr
