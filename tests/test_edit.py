"""The L2SAE editor on tiny random-weight networks (no training needed)."""

import copy

import pytest
import torch
from tiny_networks import TINY_SLICING

from l2sae.editing import AlphaMatting, EditResult, L2SAEEditor
from l2sae.editing.editor import GLOBAL_EDITS_REMEMBERED, EncodedFaces
from l2sae.editing.swap_designs import DEFAULT_STRUCTURE_SWAP
from l2sae.nn import SAEConfig, SwappingAutoencoder, save_sae
from l2sae.regions import DEFAULT_MASK_THRESHOLD, ROI_NAMES, SliceScheme, masks_from_region_decodes
from l2sae.utils.errors import ConfigError

SIZE = 64


def _tiny_sae(seed):
    torch.manual_seed(seed)
    return SwappingAutoencoder(SAEConfig.preset("tiny"), with_discriminators=False).set_noise("zero")


@pytest.fixture(scope="module")
def networks():
    return _tiny_sae(1), _tiny_sae(2)


@pytest.fixture
def editor(networks):
    return L2SAEEditor(*networks, TINY_SLICING, matting=AlphaMatting(kernel_size=5), precision="32", window=False)


@pytest.fixture
def images():
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7)) * 2 - 1


def _half(side: str, batch: int = 2) -> torch.Tensor:
    """B x H x W mask of the left or right half."""
    mask = torch.zeros(batch, SIZE, SIZE)
    if side == "left":
        mask[..., : SIZE // 2] = 1.0
    else:
        mask[..., SIZE // 2 :] = 1.0
    return mask


def _spy(monkeypatch, network, method):
    """Wrap ``network.method`` so that every call's arguments are appended to the returned list."""
    calls, original = [], getattr(network, method)

    def spied(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(network, method, spied)
    return calls


def _craft_smpn_decode(monkeypatch, editor, calls):
    """Make the SMPN draw hair (channels 0, 1) white on the left half and skin (2, 3) on the right half.

    The crafted decoder looks only at which structure channels are non-zero, so it checks that the
    editor zeroes every channel outside the requested region before decoding.
    """

    def generate(structure, texture, normalize_structure=True):
        calls.append(structure.shape[0])
        images = -torch.ones(structure.shape[0], 3, SIZE, SIZE)
        hair = structure[:, 0:2].abs().sum(dim=(1, 2, 3)) > 0
        skin = structure[:, 2:4].abs().sum(dim=(1, 2, 3)) > 0
        images[hair, :, :, : SIZE // 2] = 1.0
        images[skin, :, :, SIZE // 2 :] = 1.0
        return images

    monkeypatch.setattr(editor.smpn.G, "forward", generate)


def test_masks_come_from_one_batched_decode_of_sliced_codes(monkeypatch, editor, images):
    calls = []
    _craft_smpn_decode(monkeypatch, editor, calls)
    masks = editor.masks(images, ["skin", "hair", "nose"])
    assert masks.shape == (2, 3, SIZE, SIZE)
    assert calls == [2 * 3]  # one generator call for all B x R region decodes
    assert torch.equal(masks[:, 0], _half("right"))
    assert torch.equal(masks[:, 1], _half("left"))
    assert not masks[:, 2].any()  # the nose channels alone draw nothing


def test_masks_of_random_networks_have_shape_and_range(editor, images):
    masks = editor.masks(images, ROI_NAMES)
    assert masks.shape == (2, 5, SIZE, SIZE)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    soft = L2SAEEditor(editor.smn, editor.smpn, TINY_SLICING, soft_masks=True, precision="32").masks(images, "hair")
    assert soft.shape == (2, 1, SIZE, SIZE) and 0 <= soft.min() and soft.max() <= 1


def test_style_edit_changes_the_region_and_nothing_else(monkeypatch, editor, images):
    _craft_smpn_decode(monkeypatch, editor, [])
    result = editor.edit_style(images, "hair", strength=1.0, seed=3)
    assert isinstance(result, EditResult)
    assert result.images.shape == images.shape and result.global_edit.shape == images.shape
    assert result.matte.shape == (2, 1, SIZE, SIZE)
    outside = (result.matte == 0).expand_as(images)
    inside = (result.matte == 1).expand_as(images)
    assert outside[..., SIZE // 2 + 4 :].all() and inside[..., : SIZE // 2 - 4].all()
    assert torch.equal(result.images[outside], images[outside])
    assert torch.equal(result.images[inside], result.global_edit[inside])
    assert (result.images[inside] != images[inside]).float().mean() > 0.99
    # the texture noise moved the style: the global edit is not the plain reconstruction
    reconstruction = editor.swap_style(images, images, "hair").global_edit
    assert (result.global_edit - reconstruction).abs().mean() > 1e-4
    assert result.images.min() >= -1 and result.images.max() <= 1


def test_same_seed_same_edit_other_seed_other_edit(editor, images):
    first = editor.edit_style(images, "skin", strength=1.5, seed=11)
    faces = editor.encode(images)
    again = editor.edit_style(faces, "skin", strength=1.5, seed=11)
    other = editor.edit_style(faces, "skin", strength=1.5, seed=12)
    assert torch.equal(first.images, again.images) and torch.equal(first.global_edit, again.global_edit)
    assert not torch.equal(first.global_edit, other.global_edit)


def test_strength_zero_is_the_identity(editor, images):
    result = editor.edit_style(images, ["hair", "eyes"], strength=0.0, seed=5)
    assert torch.equal(result.images, images)
    assert not result.matte.any()


def test_several_regions_are_edited_as_their_union(editor, images):
    faces = editor.encode(images)
    faces.region_masks.update(hair=_half("left"), skin=torch.zeros(2, SIZE, SIZE))
    faces.region_masks["skin"][:, : SIZE // 4] = 1.0  # top quarter
    union = torch.maximum(faces.region_masks["hair"], faces.region_masks["skin"]).unsqueeze(1)
    result = editor.edit_style(faces, ["hair", "skin"], strength=1.0, seed=0)
    assert torch.allclose(result.matte, editor.matting.matte(union))
    batch3 = editor.edit_style(torch.cat([images, images[:1]]), ["hair", "skin", "nose"], seed=0)
    assert batch3.images.shape == (3, 3, SIZE, SIZE) and batch3.matte.shape == (3, 1, SIZE, SIZE)


def test_cached_codes_encode_once_and_reuse_masks(monkeypatch, editor, images):
    smn_encodes = _spy(monkeypatch, editor.smn, "encode")
    smpn_encodes = _spy(monkeypatch, editor.smpn, "encode")
    smpn_decodes = _spy(monkeypatch, editor.smpn, "decode_sliced")

    def counts():
        return len(smn_encodes), len(smpn_encodes), len(smpn_decodes)

    faces = editor.encode(images, rois=ROI_NAMES)
    assert counts() == (1, 1, 1)
    from_faces = [editor.edit_style(faces, roi, seed=1) for roi in ROI_NAMES]
    editor.swap_style(faces, faces, "hair")
    assert counts() == (1, 1, 1)  # no further encode, masks reused
    from_images = editor.edit_style(images, "nose", seed=1)
    assert torch.equal(from_faces[2].images, from_images.images)


def test_further_regions_with_a_known_style_change_cost_no_decode(monkeypatch, editor, images):
    faces = editor.encode(images, rois=ROI_NAMES)
    first = editor.edit_style(faces, "hair", strength=1.0, seed=9)
    smn_decodes = _spy(monkeypatch, editor.smn, "decode")
    smpn_decodes = _spy(monkeypatch, editor.smpn, "decode_sliced")
    further = editor.edit_style(faces, "eyes", strength=1.0, seed=9)
    assert not smn_decodes and not smpn_decodes
    assert torch.equal(further.global_edit, first.global_edit)
    assert torch.equal(further.images, editor.edit_style(images, "eyes", strength=1.0, seed=9).images)
    editor.edit_style(faces, "eyes", strength=1.0, seed=None)  # a fresh direction is never remembered
    assert len(smn_decodes) == 2 and len(faces.global_edits) == 1
    for seed in range(GLOBAL_EDITS_REMEMBERED + 2):  # the memory stays bounded, oldest out first
        editor.edit_style(faces, "eyes", strength=1.0, seed=seed)
    assert list(faces.global_edits) == [(1.0, seed) for seed in range(2, GLOBAL_EDITS_REMEMBERED + 2)]


def test_another_style_sigma_never_reuses_a_remembered_style_edit(networks, editor, images):
    wider = L2SAEEditor(*networks, TINY_SLICING, precision="32", window=False, style_sigma=5.0)
    faces = editor.encode(images)  # the same networks and mask settings: wider reads these faces
    narrow = editor.edit_style(faces, "hair", strength=1.0, seed=3)
    from_faces = wider.edit_style(faces, "hair", strength=1.0, seed=3)
    assert torch.equal(from_faces.global_edit, wider.edit_style(images, "hair", strength=1.0, seed=3).global_edit)
    assert not torch.equal(from_faces.global_edit, narrow.global_edit)
    # the same texture offset (strength x style_sigma) and seed is the same style change: remembered
    assert torch.equal(editor.edit_style(faces, "hair", strength=5.0, seed=3).global_edit, from_faces.global_edit)


def test_encoded_faces_of_another_precision_are_refused(networks, editor, images):
    bf16 = L2SAEEditor(*networks, TINY_SLICING, precision="bf16", window=False)
    with pytest.raises(ValueError, match="images: these EncodedFaces were encoded by another L2SAEEditor"):
        bf16.edit_style(editor.encode(images), "hair", seed=3)


def test_swap_with_itself_is_the_identity_up_to_the_matte(editor, images):
    faces = editor.encode(images)
    faces.region_masks["hair"] = _half("left")
    style = editor.swap_style(faces, faces, "hair")
    structure = editor.swap_structure(faces, faces, "hair", design="smn_sliced")
    reconstruction = editor._decode(editor.smn, faces.smn_structure, faces.smn_texture)
    assert torch.equal(style.global_edit, reconstruction) and torch.equal(structure.global_edit, reconstruction)
    for result in (style, structure):
        outside = (result.matte == 0).expand_as(images)
        assert outside.any() and torch.equal(result.images[outside], images[outside])
        expected, _ = editor.matting(images, reconstruction, _half("left").unsqueeze(1))
        assert torch.allclose(result.images, expected)


def test_swap_style_takes_the_references_texture(monkeypatch, editor, images):
    reference = torch.rand(1, 3, 96, 96) * 2 - 1  # any size, batch of one is broadcast
    decodes = _spy(monkeypatch, editor.smn, "decode")
    result = editor.swap_style(images, reference, "eyes")
    reference_texture = editor.smn.encode(reference)[1]
    assert len(decodes) == 1 and torch.allclose(decodes[0][1], reference_texture.expand(2, -1))
    assert result.images.shape == images.shape
    with pytest.raises(ValueError, match="reference"):
        editor.swap_style(images, torch.rand(3, 3, SIZE, SIZE), "eyes")


def _faces_and_donor(editor, images):
    """Encoded faces whose hair is the left half, and a donor whose hair is the top right quarter."""
    faces, donor = editor.encode(images), editor.encode(torch.rand(1, 3, SIZE, SIZE) * 2 - 1)
    faces.region_masks["hair"] = _half("left")
    donor.region_masks["hair"] = torch.zeros(1, SIZE, SIZE)
    donor.region_masks["hair"][:, : SIZE // 4, SIZE // 2 :] = 1.0
    return faces, donor


@pytest.mark.parametrize(("design", "network"), [("smn_sliced", "smn"), ("smpn", "smpn")])
def test_swap_structure_swaps_only_the_regions_channels_inside_both_regions(
    monkeypatch, editor, images, design, network
):
    faces, donor = _faces_and_donor(editor, images)
    decodes = _spy(monkeypatch, getattr(editor, network), "decode")
    result = editor.swap_structure(faces, donor, "hair", design=design)
    ((structure, texture),) = decodes
    code, donor_code = getattr(faces, f"{network}_structure"), getattr(donor, f"{network}_structure")
    assert torch.equal(structure[:, :2], donor_code[:, :2].expand(2, -1, -1, -1))
    assert torch.equal(structure[:, 2:], code[:, 2:])
    assert torch.equal(texture, getattr(faces, f"{network}_texture"))
    covered = result.matte[:, 0] > 0
    assert covered[:, :, : SIZE // 2].all() and covered[:, : SIZE // 4, SIZE // 2 :].all()
    assert not covered[:, SIZE // 2 :, SIZE // 2 + 4 :].any()
    with pytest.raises(ValueError, match="donor"):
        editor.swap_structure(images, torch.rand(1, 3, 32, 32), "hair")


def test_swapped_matte_covers_the_region_where_the_spliced_smpn_code_puts_it(editor, images):
    faces, donor = _faces_and_donor(editor, images)
    result = editor.swap_structure(faces, donor, "hair", design="smpn_swapped_matte")
    spliced = faces.smpn_structure.clone()
    spliced[:, :2] = donor.smpn_structure[:, :2]
    swapped = EncodedFaces(images, faces.smn_structure, faces.smn_texture, spliced, faces.smpn_texture)
    swapped_hair = editor.masks(swapped, "hair")
    assert swapped_hair.sum() > 0 and not torch.equal(swapped_hair[:, 0], donor.region_masks["hair"].expand(2, -1, -1))
    reconstruction = editor._decode(editor.smpn, spliced, faces.smpn_texture)
    expected, _ = editor.matting(images, reconstruction, torch.maximum(_half("left")[:, None], swapped_hair))
    assert torch.allclose(result.images, expected, atol=1e-6)


def test_the_editor_s_design_is_the_default_and_is_checked(networks, editor, images):
    assert editor.structure_swap == DEFAULT_STRUCTURE_SWAP
    faces, donor = _faces_and_donor(editor, images)
    chosen = L2SAEEditor(
        *networks, TINY_SLICING, matting=AlphaMatting(kernel_size=5), precision="32", structure_swap="smn_sliced"
    )
    assert torch.equal(
        chosen.swap_structure(faces, donor, "hair").images,
        editor.swap_structure(faces, donor, "hair", design="smn_sliced").images,
    )
    with pytest.raises(
        ConfigError,
        match="editor.structure_swap: expected one of smn_sliced, smn_sliced_swapped_matte, smpn, smpn_swapped_matte, got 'smn'",
    ):
        L2SAEEditor(*networks, TINY_SLICING, structure_swap="smn")
    with pytest.raises(ConfigError, match="design: expected one of smn_sliced, .*, got 'best'"):
        editor.swap_structure(faces, donor, "hair", design="best")


def test_bf16_runs_bfloat16_copies_and_stays_close_to_float32(networks, images):
    editors = {precision: L2SAEEditor(*networks, TINY_SLICING, precision=precision) for precision in ("32", "bf16")}
    results = {precision: editor.edit_style(images, "hair", seed=0) for precision, editor in editors.items()}
    bf16 = editors["bf16"]
    assert {p.dtype for network in (bf16.smn, bf16.smpn) for p in network.parameters()} == {torch.bfloat16}
    assert {p.dtype for network in networks for p in network.parameters()} == {torch.float32}  # left as given
    ready = copy.deepcopy(networks[0]).eval().requires_grad_(False)  # float32, eval, no gradients, no noise
    assert L2SAEEditor(ready, networks[1], TINY_SLICING, precision="32").smn is ready  # used as it is, not copied
    assert bf16.masks(images, ["hair", "eyes"]).dtype == torch.float32
    reference = results["32"].global_edit
    difference = results["bf16"].global_edit - reference
    assert difference.abs().max() < 0.05
    assert difference.pow(2).mean().sqrt() < 0.1 * reference.std()  # within 10% of the signal
    assert results["bf16"].images.dtype == torch.float32


def test_bad_arguments_are_named(editor, images, networks):
    with pytest.raises(ConfigError, match="roi: unknown region 'beard'"):
        editor.edit_style(images, "beard")
    with pytest.raises(ValueError, match="images"):
        editor.edit_style(images[0], "hair")
    with pytest.raises(ConfigError, match="precision"):
        L2SAEEditor(*networks, TINY_SLICING, precision="16")
    with pytest.raises(ConfigError, match="slicing.num_channels"):
        L2SAEEditor(*networks, SliceScheme({"hair": (0,)}, 4))


def test_from_checkpoints_reads_slicing_and_matches_in_memory_editor(tmp_path, networks, editor, images):
    smn_path = save_sae(networks[0], tmp_path / "smn.pt", with_discriminators=False)
    smpn_path = save_sae(
        networks[1], tmp_path / "smpn.pt", extra={"slicing": TINY_SLICING.to_dict(), "image_size": SIZE, "kind": "smpn"}
    )
    loaded = L2SAEEditor.from_checkpoints(smn_path, smpn_path, matting={"kernel_size": 5}, precision="32")
    assert loaded.slicing == TINY_SLICING and loaded.image_size == SIZE
    expected = editor.edit_style(images, "lips_mouth", seed=4)
    assert torch.equal(loaded.edit_style(images, "lips_mouth", seed=4).images, expected.images)
    with pytest.raises(FileNotFoundError, match="python train.py"):
        L2SAEEditor.from_checkpoints(tmp_path / "missing.pt", smpn_path)
    bare = save_sae(networks[1], tmp_path / "bare.pt")
    with pytest.raises(ConfigError, match="slicing"):
        L2SAEEditor.from_checkpoints(smn_path, bare)
    assert L2SAEEditor.from_checkpoints(smn_path, bare, slicing=TINY_SLICING.to_dict()).slicing == TINY_SLICING


def test_from_checkpoints_reads_masks_at_the_smpn_s_recorded_threshold(tmp_path, networks, images):
    smn_path = save_sae(networks[0], tmp_path / "smn.pt", with_discriminators=False)
    extra = {"slicing": TINY_SLICING.to_dict(), "image_size": SIZE, "kind": "smpn", "mask_threshold": 0.3}
    smpn_path = save_sae(networks[1], tmp_path / "smpn.pt", extra=extra)
    loaded = L2SAEEditor.from_checkpoints(smn_path, smpn_path)
    assert loaded.mask_threshold == 0.3
    smpn = networks[1].eval().set_noise("zero")
    with torch.no_grad():
        decodes = smpn.decode_sliced(*smpn.encode(images), TINY_SLICING.channel_masks(["hair"])).clamp(-1, 1)
    assert torch.equal(loaded.masks(images, "hair"), masks_from_region_decodes(decodes, threshold=0.3))
    assert L2SAEEditor.from_checkpoints(smn_path, smpn_path, mask_threshold=0.05).mask_threshold == 0.05
    assert L2SAEEditor.from_checkpoints(smn_path, smpn_path, mask_threshold=None).mask_threshold == 0.3
    older = save_sae(networks[1], tmp_path / "older.pt", extra={"slicing": TINY_SLICING.to_dict()})
    assert L2SAEEditor.from_checkpoints(smn_path, older).mask_threshold == DEFAULT_MASK_THRESHOLD


def _network_state(network):
    """What an editor must not change in a caller's network: modes, gradient flags, dtypes, noise."""
    return (
        [module.training for module in network.modules()],
        [(parameter.requires_grad, parameter.dtype) for parameter in network.parameters()],
        [getattr(module, "mode", None) for module in network.modules()],
    )


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_the_callers_networks_stay_as_given(images, precision):
    smn, smpn = _tiny_sae(1).train().set_noise("random"), _tiny_sae(2).train().set_noise("random")
    smpn.E.requires_grad_(False)  # a mix of frozen and trainable weights
    before = _network_state(smn), _network_state(smpn)
    editor = L2SAEEditor(smn, smpn, TINY_SLICING, precision=precision)
    first = editor.edit_style(images, "hair", seed=1).images
    assert (_network_state(smn), _network_state(smpn)) == before
    assert torch.equal(editor.edit_style(images, "hair", seed=1).images, first)  # the editor's copies: no noise
