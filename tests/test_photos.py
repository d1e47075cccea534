"""l2sae.photos on a real photo (scikit-image's astronaut): detection, FFHQ alignment, paste-back, odd inputs."""

import io
import warnings

import numpy as np
import pytest
import torch
from layers_helpers import TASKS, imported_modules, package_files
from PIL import Image
from skimage import data

from l2sae.photos import NoFaceError, PhotoError, align_face, find_faces, load_photo, paste_faces
from l2sae.photos.alignment import image_quad, square_to_photo
from l2sae.photos.faces import frames_like_ffhq
from l2sae.utils.errors import ImageFileError

SIZE = 64  # the tiny networks' side


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1]."""
    return float(10 * torch.log10(4.0 / ((a - b) ** 2).mean()))


def on_canvas(photo: np.ndarray, scale: float, angle: float, at: tuple[int, int], size=(900, 700)) -> np.ndarray:
    """The photo scaled, rotated (degrees, counter-clockwise) and pasted at ``at`` on a flat canvas."""
    image = Image.fromarray(photo)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(40, 60, 90))
    canvas = Image.new("RGB", size, (40, 60, 90))
    canvas.paste(image, at)
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def aligned(astronaut):
    return find_faces(astronaut, 256)


@pytest.fixture(scope="module")
def two_astronauts(astronaut):
    """Two astronauts on one canvas (the right one larger), found once for all tests."""
    canvas = np.full((560, 1100, 3), 90, np.uint8)
    canvas[20:532, 560:1072] = astronaut
    canvas[150 : 150 + 384, 30 : 30 + 384] = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.LANCZOS))
    return find_faces(canvas, SIZE)


def test_the_astronaut_is_found_with_an_ffhq_square(aligned):
    (face,) = aligned.faces
    assert aligned.align == "ffhq" and face.status == "edited"
    left, top, right, bottom = face.box
    assert 160 < left < 190 and 75 < right - left < 100 and 60 < top < 95
    assert face.landmarks.shape == (68, 2)
    assert 160 < face.side < 190  # the FFHQ square: ~4 eye distances
    assert aligned.crops.shape == (1, 3, 256, 256) and aligned.crops.abs().max() <= 1


def test_rotated_scaled_off_centre_astronaut_aligns_to_nearly_the_same_crop(astronaut, aligned):
    canvas = on_canvas(astronaut, scale=0.6, angle=20, at=(480, 250))
    moved = find_faces(canvas, 256, min_face_size=64)
    assert psnr(moved.crops[0], aligned.crops[0]) >= 25.0
    top_edge = moved.faces[0].quad[3] - moved.faces[0].quad[0]
    assert np.degrees(np.arctan2(-top_edge[1], top_edge[0])) == pytest.approx(20 - 3, abs=2)  # -3: the original's roll


def test_crop_alignment_is_an_upright_square_around_the_box(astronaut):
    cropped = find_faces(astronaut, SIZE, align="crop")
    quad = cropped.faces[0].quad
    assert quad[0][0] == quad[1][0] and quad[0][1] == quad[3][1]  # no rotation
    assert cropped.align == "crop" and cropped.crops.shape == (1, 3, SIZE, SIZE)


def test_align_none_squashes_the_whole_picture_without_detection():
    noise = np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    whole = find_faces(noise, SIZE, align="none")
    (face,) = whole.faces
    assert face.box is None and whole.crops.shape == (1, 3, SIZE, SIZE)
    assert np.allclose(face.matrix[:2, :2], np.diag([80 / SIZE, 50 / SIZE]))


def test_an_aligned_crop_goes_through_auto_unchanged(aligned):
    crop = ((aligned.crops[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    again = find_faces(crop, 256, align="auto")
    assert again.align == "as_is" and np.array_equal(again.faces[0].matrix, np.eye(3))
    assert torch.equal(again.crops[0], torch.from_numpy(crop).permute(2, 0, 1).float() / 127.5 - 1.0)
    assert frames_like_ffhq(find_faces(crop, 256, align="ffhq").faces[0].quad, 256)


def test_a_read_only_picture_of_the_models_size_is_taken_bit_for_bit_without_a_warning():
    picture = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    picture.flags.writeable = False  # as np.asarray(a PIL image) gives it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on a tensor over a read-only array
        crop = align_face(picture, image_quad(SIZE, SIZE), SIZE)
    assert torch.equal(crop, torch.tensor(picture).permute(2, 0, 1).float() / 127.5 - 1.0)


def test_a_zero_matte_pastes_back_the_photo_bit_for_bit(two_astronauts):
    faces = two_astronauts.edited_faces
    assert len(faces) == 2
    noise = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    pasted, matte = two_astronauts.paste(noise, torch.zeros(2, 1, SIZE, SIZE))
    assert np.array_equal(pasted, two_astronauts.image) and not matte.any()


def test_pixels_outside_the_warped_mattes_stay_exact_for_every_face(two_astronauts):
    mattes = torch.zeros(2, 1, SIZE, SIZE)
    mattes[:, :, 10:40, 15:50] = 1.0
    images = -torch.ones(2, 3, SIZE, SIZE)  # black
    pasted, matte = two_astronauts.paste(images, mattes)
    outside = matte == 0
    assert np.array_equal(pasted[outside], two_astronauts.image[outside])
    for face in two_astronauts.edited_faces:  # each face's region is darkened where its matte is 1
        centre = face.matrix @ [30, 25, 1]
        x, y = int(centre[0]), int(centre[1])
        assert matte[y, x] == pytest.approx(1.0) and pasted[y, x].max() <= 1
    assert 0 < matte[(matte > 0) & (matte < 1)].size  # soft edges


def test_the_matte_fades_out_only_along_sides_of_the_square_inside_the_photo():
    images, mattes = torch.ones(1, 3, SIZE, SIZE), torch.ones(1, 1, SIZE, SIZE)
    whole, above = image_quad(SIZE, SIZE), np.array([[20.0, -50], [20, 60], [130, 60], [130, -50]])
    picture = np.zeros((SIZE, SIZE, 3), np.uint8)
    _, matte = paste_faces(picture, [whole], [square_to_photo(whole, SIZE)], images, mattes)
    assert (matte == 1).all()  # the whole picture: edited to its edge
    photo = np.zeros((100, 100, 3), np.uint8)
    _, matte = paste_faces(photo, [above], [square_to_photo(above, SIZE)], images, mattes)
    # the top side lies above the photo and the right one beyond it: no fade there; left and bottom fade out
    assert matte[:50, 30:].min() > 0.999 and matte[:50, 20].max() < 0.25 and matte[60, 30:].max() < 0.25


def test_a_face_far_larger_than_the_crop_fades_to_zero_inside_its_box_no_straight_seam():
    """Warped 12.5x, the crop's border pixel spreads over 6 photo pixels; it must fade out before the box ends."""
    square = np.array([[100.0, 100], [100, 300], [300, 300], [300, 100]])  # 200 px for a 16 px crop
    images, mattes = torch.ones(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
    photo = np.zeros((400, 400, 3), np.uint8)
    pasted, matte = paste_faces(photo, [square], [square_to_photo(square, 16)], images, mattes)
    assert (
        matte[:106].max() == 0 and matte[294:].max() == 0 and matte[:, :106].max() == 0
    )  # border centres 106.25, 293.75
    assert matte[110, 200] > 0 and matte[200, 200] == 1 and (pasted[matte == 0] == 0).all()


def test_a_small_rotated_face_leaks_nothing_past_its_square():
    """Squares under half the crop's side are reduced first; the fade is applied after, so border padding spreads
    only zeros past the square."""
    angle, centre, half = np.radians(30), np.array([100.0, 100.0]), 10.0  # a 20 px square for a 64 px crop
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-half, -half], [-half, half], [half, half], [half, -half]]) @ turn.T + centre
    images, mattes = torch.ones(1, 3, SIZE, SIZE), torch.ones(1, 1, SIZE, SIZE)
    pasted, matte = paste_faces(np.zeros((200, 200, 3), np.uint8), [corners], [square_to_photo(corners, SIZE)], images,
                                mattes)  # fmt: skip
    ys, xs = np.mgrid[:200, :200]
    local = (np.stack([xs, ys], -1) + 0.5 - centre) @ turn  # pixel centres in the square's frame
    outside = np.abs(local).max(-1) > half + 1.0
    assert matte[outside].max() == 0 and pasted[outside].max() == 0 and matte.max() > 0.9


def test_the_larger_face_is_pasted_last(astronaut):
    photo = np.zeros((100, 100, 3), np.uint8)
    small = np.array([[20.0, 20], [20, 60], [60, 60], [60, 20]])
    large = np.array([[10.0, 10], [10, 90], [90, 90], [90, 10]])
    images = torch.stack([torch.full((3, SIZE, SIZE), 1.0), torch.full((3, SIZE, SIZE), -1.0 + 2 * 100 / 255)])
    mattes = torch.ones(2, 1, SIZE, SIZE)
    quads = [large, small]  # given large first: still pasted last
    pasted, _ = paste_faces(photo, quads, [square_to_photo(q, SIZE) for q in quads], images, mattes)
    assert tuple(pasted[50, 50]) == (255, 255, 255)


def test_a_face_partly_outside_the_photo_is_padded_and_pasted(astronaut):
    cut = np.ascontiguousarray(astronaut[70:, 150:])  # the FFHQ square leaves the photo at the top and left
    found = find_faces(cut, SIZE)
    quad = found.faces[0].quad
    assert quad[:, 0].min() < 0 and quad[:, 1].min() < 0
    assert found.crops.std() > 0.1  # the padded part is image-like, not one flat colour
    pasted, matte = found.paste(found.crops, torch.ones(1, 1, SIZE, SIZE))
    assert pasted.shape == cut.shape and matte[0, 0] > 0 and matte[-1, -1] == 0


def test_too_small_faces_are_skipped_with_their_size(astronaut):
    with pytest.raises(NoFaceError, match=r"too small: 1[67]\d px across.*below 400 px"):
        find_faces(astronaut, SIZE, min_face_size=400)
    canvas = np.full((600, 900, 3), 90, np.uint8)
    canvas[40:552, 360:872] = astronaut
    canvas[300:556, 40:296] = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS))
    found = find_faces(canvas, 256, upsample=1)
    small, large = found.faces
    assert small.status == "skipped" and "too small" in small.reason and large.status == "edited"
    assert len(found.crops) == 1


def test_face_choice(two_astronauts):
    assert two_astronauts.faces[0].side < two_astronauts.faces[1].side  # numbered from the left
    image = two_astronauts.image
    largest = find_faces(image, SIZE, faces="largest")
    assert [face.status for face in largest.faces] == ["skipped", "edited"]
    assert "not chosen" in largest.faces[0].reason
    assert [face.status for face in find_faces(image, SIZE, faces="0").faces] == ["edited", "skipped"]
    with pytest.raises(NoFaceError, match="faces=5 but 2"):
        find_faces(image, SIZE, faces=5)
    with pytest.raises(ValueError, match="faces: expected"):
        find_faces(image, SIZE, faces="biggest")
    with pytest.raises(ValueError, match="align: expected"):
        find_faces(image, SIZE, align="eyes")


def test_no_face_and_corrupt_files_name_the_file(tmp_path):
    flat = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (120, 130, 140)).save(flat)
    with pytest.raises(NoFaceError, match="wall.png: no face found"):
        find_faces(flat, SIZE)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageFileError, match="broken.jpg: not a readable image"):
        find_faces(broken, SIZE)
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        load_photo(tmp_path / "nowhere.jpg")
    with pytest.raises(PhotoError, match="the photo array: expected uint8"):
        load_photo(np.zeros((4, 4, 2), np.float32))


def test_odd_photo_formats_become_rgb(astronaut, tmp_path):
    gray = astronaut.mean(axis=2).round().astype(np.uint8)
    assert np.array_equal(load_photo(Image.fromarray(gray))[0], np.repeat(gray[..., None], 3, axis=2))
    deep = gray.astype(np.uint16) * 257
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert np.array_equal(load_photo(tmp_path / "deep.png")[0][..., 0], gray)
    assert np.array_equal(load_photo(deep)[0][..., 1], gray)
    cmyk = Image.fromarray(astronaut).convert("CMYK")
    cmyk.save(tmp_path / "print.jpg", quality=95)
    assert np.abs(load_photo(tmp_path / "print.jpg")[0].astype(int) - astronaut).mean() < 8
    rgba = np.dstack([astronaut, np.zeros(astronaut.shape[:2], np.uint8)])  # fully transparent: white
    assert (load_photo(rgba)[0] == 255).all()


def test_exif_orientation_is_honoured(astronaut):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    Image.fromarray(astronaut[:, :300]).save(buffer, format="JPEG", exif=exif, quality=95)
    buffer.seek(0)
    pixels, _ = load_photo(Image.open(buffer))
    assert pixels.shape == (300, 512, 3)


def test_a_48_megapixel_photo_is_detected_on_a_downscaled_copy(astronaut):
    canvas = np.full((6000, 8000, 3), 128, np.uint8)
    canvas[1000:4072, 3000:6072] = np.asarray(Image.fromarray(astronaut).resize((3072, 3072), Image.BILINEAR))
    found = find_faces(canvas, SIZE)
    (face,) = found.faces
    assert face.box[0] == pytest.approx(3000 + 6 * 175, abs=60) and 6 * 160 < face.side < 6 * 190
    quad_in_astronaut = (face.quad + 0.5 - [3000, 1000]) / 6 - 0.5  # continuous coordinates scale by 6
    small = align_face(astronaut, quad_in_astronaut, SIZE)
    assert psnr(found.crops[0], small) > 25


def test_the_photo_pipeline_never_imports_the_editor_or_a_task():
    # no Hydra/OmegaConf/Lightning on import: tests/test_layers.py (l2sae.editing imports l2sae.photos)
    offenders = {
        str(path): sorted(
            name for name in imported_modules(path) if name.split(".")[:2] in (["l2sae", t] for t in TASKS)
        )
        for path in package_files("photos")
    }
    assert not any(offenders.values()), offenders
