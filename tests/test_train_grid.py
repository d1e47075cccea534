"""The training grid's edit column is the editor's edit (one Algorithm 1 in the project)."""

from functools import partial

import torch
from train_helpers import L1_SMPN_LOSS, tiny_sae_file

from l2sae.editing import L2SAEEditor
from l2sae.nn import load_sae
from l2sae.regions import ROI_NAMES
from l2sae.training import ImageGrid, SMPNModule

SLICING = {"num_channels": 8, "channels": {"hair": [0, 1], "skin": [2, 3], "eyes": [4], "nose": [5], "lips_mouth": [6]}}


def test_grid_edit_column_equals_the_editors_style_edit(tmp_path):
    smn_file = tiny_sae_file(tmp_path / "smn.pt")
    torch.manual_seed(0)
    module = SMPNModule(
        str(smn_file),
        SLICING,
        ROI_NAMES,
        L1_SMPN_LOSS,
        partial(torch.optim.Adam, lr=0.002),
        image_size=64,
        mask_threshold=0.05,
    )
    with torch.no_grad():  # an SMPN that has moved away from its start
        for parameter in module.sae.G.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    grid = ImageGrid(str(tmp_path), edit_roi="hair", edit_strength=1.5, seed=3)

    column = grid.edit(module.eval(), images)

    editor = L2SAEEditor(
        load_sae(smn_file, with_discriminators=False),
        module.sae,
        module.slice_scheme,
        mask_threshold=0.05,
        precision="32",
    )
    expected = editor.edit_style(images, "hair", strength=1.5, seed=3)
    assert torch.equal(column, expected.images)
    assert (expected.matte > 0).any() and not torch.equal(column, images)  # a real edit, not the identity
    assert module.sae.G.training is False and all(p.requires_grad for p in module.sae.parameters())  # left as given
