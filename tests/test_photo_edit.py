"""L2SAEEditor.prepare_photo / edit_photo on real photos (the astronaut) with tiny random networks."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from l2sae.editing import L2SAEEditor, PhotoEditResult, PreparedPhoto
from l2sae.photos import NoFaceError


@pytest.fixture(scope="module")
def editor(tiny_checkpoints):
    return L2SAEEditor.from_checkpoints(*tiny_checkpoints, precision="32", mask_threshold=0.0)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def two_astronauts(astronaut):
    canvas = np.full((560, 1100, 3), 90, np.uint8)
    canvas[20:532, 560:1072] = astronaut
    canvas[150:534, 30:414] = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.LANCZOS))
    return canvas


@pytest.fixture(scope="module")
def prepared(editor, two_astronauts):
    return editor.prepare_photo(two_astronauts)


def test_strength_zero_pastes_back_the_input_exactly(editor, prepared, two_astronauts):
    result = editor.edit_photo(prepared, "hair", strength=0)
    assert isinstance(result, PhotoEditResult) and result.image.size == (1100, 560)
    assert np.array_equal(np.asarray(result.image), two_astronauts) and not result.matte.any()


def test_an_edit_changes_only_pixels_inside_the_warped_mattes_of_every_face(editor, prepared, two_astronauts):
    result = editor.edit_photo(prepared, ["hair", "skin"], strength=2.0, seed=1)
    edited = np.asarray(result.image)
    outside = result.matte == 0
    assert np.array_equal(edited[outside], two_astronauts[outside])
    assert [face.status for face in result.faces] == ["edited", "edited"]
    for face in result.faces:
        assert face.aligned.shape == face.local_edit.shape == (3, 64, 64) and face.mask.shape == (1, 64, 64)
        assert face.mask.max() > 0
        centre = face.face.matrix @ [32, 32, 1]  # each face's matte reaches the photo around the face
        x0, y0 = int(centre[0]) - 40, int(centre[1]) - 40
        assert result.matte[y0 : y0 + 80, x0 : x0 + 80].max() > 0
    assert (edited != two_astronauts).any()


@pytest.fixture(scope="module")
def seam_edits(tiny_checkpoints, astronaut):
    """The astronaut's hair edit with seam_strength 0 and 1 (one face, about 2.7 photo px per crop px)."""
    edits = {}
    for strength in (0.0, 1.0):
        editor = L2SAEEditor.from_checkpoints(
            *tiny_checkpoints, precision="32", mask_threshold=0.0, matting={"seam_strength": strength}
        )
        edits[strength] = editor.edit_photo(astronaut, "hair", strength=2.0, seed=1)
    return edits


def test_seam_smoothing_reaches_the_photo_on_the_seam_only(seam_edits, astronaut):
    sharp, smooth = (np.asarray(seam_edits[strength].image) for strength in (0.0, 1.0))
    matte = seam_edits[1.0].matte
    assert np.array_equal(matte, seam_edits[0.0].matte)
    changed = (smooth != sharp).any(axis=-1)
    seam = (matte > 0) & (matte < 1)
    assert changed.sum() > 100 and not (changed & ~seam).any()
    assert np.array_equal(smooth[matte == 0], astronaut[matte == 0])
    assert np.array_equal(smooth[matte == 1], sharp[matte == 1])


def test_seam_strength_zero_pastes_the_global_edit_through_the_matte_unsmoothed(seam_edits):
    result = seam_edits[0.0]
    (face,) = result.faces
    pasted, _ = result.prepared.aligned.paste(face.global_edit[None], face.mask[None])
    assert np.array_equal(np.asarray(result.image), pasted)


def test_a_prepared_photo_is_encoded_once_and_a_strength_change_costs_one_decode(editor, prepared, monkeypatch):
    calls = {"encode": 0, "decode": 0}
    for name in calls:
        original = getattr(editor.smn, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(editor.smn, name, counted)
    editor.edit_photo(prepared, "hair", strength=0.7, seed=5)
    editor.edit_photo(prepared, "nose", strength=0.7, seed=5)  # same style change, another region: no decode
    assert calls == {"encode": 0, "decode": 1}  # one batched decode for both faces


def test_swaps_align_the_reference_and_donor_too(editor, prepared, astronaut, two_astronauts):
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    for mode, partner in (("swap_style", "reference"), ("swap_structure", "donor")):
        result = editor.edit_photo(prepared, "eyes", mode=mode, **{partner: mirrored})
        outside = result.matte == 0
        assert np.array_equal(np.asarray(result.image)[outside], two_astronauts[outside])
    reference = editor.prepare_photo(mirrored, faces="largest")
    assert isinstance(reference, PreparedPhoto) and len(reference.encoded) == 1
    editor.edit_photo(prepared, "eyes", mode="swap_style", reference=reference)
    with pytest.raises(ValueError, match="reference"):
        editor.edit_photo(prepared, "eyes", mode="swap_style")
    with pytest.raises(ValueError, match="reference: the prepared photo has 2 faces"):
        editor.edit_photo(prepared, "eyes", mode="swap_style", reference=prepared)
    with pytest.raises(ValueError, match="mode"):
        editor.edit_photo(prepared, "eyes", mode="paint")


def test_an_aligned_crop_goes_through_auto_unresampled(editor, prepared):
    crop = ((prepared.crops[1].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    again = editor.prepare_photo(crop)
    assert again.aligned.align == "as_is"
    assert torch.equal(again.crops[0], torch.from_numpy(crop).permute(2, 0, 1).float() / 127.5 - 1.0)
    result = editor.edit_photo(again, "hair", strength=1.0)
    edited = np.asarray(result.image)
    assert edited.shape == crop.shape and np.array_equal(edited[result.matte == 0], crop[result.matte == 0])


def test_an_as_is_face_is_edited_to_the_pictures_edge_like_the_editors_own_result(editor, prepared):
    crop = ((prepared.crops[1].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    result = editor.edit_photo(crop, "hair", strength=2.0, seed=1)
    (face,) = result.faces
    assert result.prepared.aligned.align == "as_is" and face.mask[0, 0].min() > 0.5  # the matte reaches the top
    local_edit = ((face.local_edit.permute(1, 2, 0) + 1) * 127.5).round().numpy().astype(int)
    assert np.abs(np.asarray(result.image).astype(int) - local_edit).max() <= 1  # float and uint8 rounding


def test_no_face_is_an_error_naming_the_photo(editor, tmp_path):
    wall = tmp_path / "wall.jpg"
    Image.new("RGB", (200, 150), (200, 190, 180)).save(wall)
    with pytest.raises(NoFaceError, match="wall.jpg: no face found"):
        editor.edit_photo(wall, "hair")
