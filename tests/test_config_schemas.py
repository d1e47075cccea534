"""The schemas of edit.py, evaluate.py and app.py: a value of the wrong type or outside its closed choices fails
where Hydra composes the config, and the message names the key and what it expects."""

import os
import re
from pathlib import Path

import pytest
import torch
from cli_helpers import run_script
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import l2sae.app.run  # noqa: F401 (each run module registers its schema: app_schema, edit_schema, evaluate_schema)
import l2sae.evaluation.run  # noqa: F401
from l2sae.cli import reported_errors
from l2sae.editing.photo import EditMode
from l2sae.editing.run import EditConfig
from l2sae.utils.precision import PRECISION_DTYPES, Precision

ROOT = Path(__file__).resolve().parents[1]


def _compose(task: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(task, overrides=list(overrides))


def test_the_yaml_defaults_compose_into_typed_choices():
    cfg = _compose("edit", "input=face.png", "precision=32", "mode=swap_style")
    assert cfg.precision is Precision["32"] and PRECISION_DTYPES[cfg.precision] == torch.float32  # int 32 read
    assert (
        cfg.mode is EditMode.swap_style
        and f"{cfg.mode}" == "swap_style"
        and cfg.editor.structure_swap == "smpn_swapped_matte"
    )
    assert _compose("evaluate").precision is _compose("app").precision is Precision.auto
    assert OmegaConf.to_yaml(cfg).count("precision: '32'") == 1  # saved configs keep the word


@pytest.mark.parametrize(
    "task, override, key, reason",
    [
        ("edit", "mode=paint", "mode", "Invalid value 'paint', expected one of [style, swap_style, swap_structure]"),
        ("edit", "precision=16", "precision", "Invalid value '16', expected one of [auto, 32, bf16]"),
        ("edit", "align=sideways", "align", "expected one of [auto, ffhq, crop, none]"),
        ("edit", "size_mode=stretch", "size_mode", "expected one of [resize, center_crop]"),
        ("edit", "strength=true", "strength", "Value 'True' of type 'bool' could not be converted to Float"),
        ("edit", "batch_size=two", "batch_size", "Value 'two' of type 'str' could not be converted to Integer"),
        ("edit", "editor.matting.sigma=wide", "editor.matting.sigma", "could not be converted to Float"),
        ("app", "editor.masks=quick", "editor.masks", "Invalid value 'quick', expected one of [auto, fast, full]"),
        ("evaluate", "editor.structure_swap=best", "editor.structure_swap", "expected one of [smn_sliced, "),
        ("evaluate", "strength=strong", "strength", "Value 'strong' of type 'str' could not be converted to Float"),
        ("evaluate", "metrics.fid.antialias=maybe", "metrics.fid.antialias", "'maybe' is not a valid bool"),
        ("evaluate", "metrics.swap_style.enabled=maybe", "metrics.swap_style.enabled", "is not a valid bool"),
        ("evaluate", "structure_swap.designs=[smpn,best]", "structure_swap.designs[1]", "expected one of [smn_sliced"),
        ("evaluate", "timing.images=all", "timing.images", "could not be converted to Integer"),
        ("app", "port=web", "port", "could not be converted to Integer"),
        ("app", "max_upload_mb=big", "max_upload_mb", "could not be converted to Float"),
    ],
)
def test_a_wrong_type_or_choice_fails_where_the_config_is_composed(task, override, key, reason):
    with pytest.raises(ConfigCompositionException, match=f"Error merging override {re.escape(override)}") as caught:
        _compose(task, override)
    cause = caught.value.__cause__
    assert cause.full_key == key and reason in str(cause)


def test_a_wrong_type_read_at_run_time_is_one_error_line_naming_the_key(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR")  # (conftest sets it: tracebacks for the other tests)
    cfg = OmegaConf.merge(OmegaConf.structured(EditConfig), {"batch_size": "${oc.env:L2SAE_NO_SUCH_VARIABLE,two}"})
    with pytest.raises(SystemExit) as stopped, reported_errors():
        cfg.batch_size  # noqa: B018 (an interpolation resolves when read)
    assert stopped.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: batch_size: While dereferencing interpolation '${oc.env:L2SAE_NO_SUCH_VARIABLE,two}': "
        "Value 'two' of type 'str' could not be converted to Integer"
    ]


def test_edit_py_names_the_key_and_the_choices_of_an_unknown_mode(tmp_path):
    done = run_script(
        ROOT / "edit.py", ["input=face.png", "mode=paint"], cwd=tmp_path, env={**os.environ, "HYDRA_FULL_ERROR": "0"}
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Invalid value 'paint', expected one of [style, swap_style, swap_structure]" in done.stderr
    assert "full_key: mode" in done.stderr and "Error merging override mode=paint" in done.stderr
    assert not (tmp_path / "logs").exists()  # nothing written
