"""Checkpoints and resumes (issue 17 items 2, 5, 6, 12): the step schedule, last.ckpt at the end of a stage,
an exact resume, per-stage resume files, and checkpoints that could hold code."""

import warnings

import pytest
import torch
from pickle_helpers import CodeInPickle
from train_helpers import compose_train

from l2sae.nn.checkpoint import CheckpointError
from l2sae.training import run
from l2sae.training.run import resume_paths
from l2sae.utils.errors import ConfigError

SMN = ["model=smn", "callbacks.image_grid=null", "data.hflip=false"]


def smn_state(run_dir):
    return torch.load(run_dir / "smn.pt", weights_only=True)["state_dict"]


def test_checkpoints_are_saved_when_the_step_jumps_past_a_due_step_and_last_at_the_end(tmp_path, data_dir):
    """The SMN's step moves by 2 per batch plus 1 per R1 step (r1_every=2): 2, 5, 7, 10, 12, 15."""
    run_dir = tmp_path / "logs" / "run"
    overrides = [
        *SMN,
        "loss.sae.r1_every=2",
        "model.smn.trainer.max_steps=13",
        "callbacks.model_checkpoint.every_n_train_steps=4",
        "callbacks.model_checkpoint.save_top_k=-1",
    ]
    run(compose_train(run_dir, data_dir, overrides))
    folder = run_dir / "checkpoints" / "smn"
    assert sorted(path.name for path in folder.glob("step*.ckpt")) == [
        "step0000005.ckpt",  # due 4
        "step0000010.ckpt",  # due 8
        "step0000012.ckpt",  # due 12
    ]
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 15  # the stage's end
    exported = smn_state(run_dir)
    # running the finished stage again from last.ckpt trains nothing and exports the same network, without
    # Lightning's warning that the checkpoint folder is not empty (a resumed run's own folder never is)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(compose_train(run_dir, data_dir, [*overrides, "ckpt_path=last"]))
    assert not [warning for warning in caught if "exists and is not empty" in str(warning.message)]
    for name, value in smn_state(run_dir).items():
        assert torch.equal(value, exported[name]), name


@pytest.mark.slow  # three short trainings
def test_a_killed_and_resumed_run_equals_the_uninterrupted_run(tmp_path, data_dir):
    """Killed at step 12 (last.ckpt at 10: due at 5 and 10, saved at 6 and 10; inside the first 16-step epoch),
    resumed across the epoch's end."""
    common = [*SMN, "model.smn.trainer.max_steps=20", "callbacks.model_checkpoint.every_n_train_steps=5"]
    straight = tmp_path / "straight" / "run"
    run(compose_train(straight, data_dir, common))
    resumed = tmp_path / "resumed" / "run"
    crash = ["+callbacks.crash._target_=train_helpers.CrashAfter", "+callbacks.crash.step=12"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_train(resumed, data_dir, [*common, *crash]))
    run(compose_train(resumed, data_dir, [*common, "ckpt_path=last"]))
    expected = smn_state(straight)
    for name, value in smn_state(resumed).items():
        assert torch.equal(value, expected[name]), name


def test_a_resume_checkpoint_with_code_is_refused_unrun(tmp_path, data_dir):
    run_dir = tmp_path / "logs" / "run"
    overrides = [*SMN, "model.smn.trainer.max_steps=2"]
    run(compose_train(run_dir, data_dir, overrides))
    checkpoint = torch.load(run_dir / "checkpoints" / "smn" / "last.ckpt", weights_only=True)
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({**checkpoint, "extra": CodeInPickle(marker)}, evil)
    with pytest.raises(CheckpointError, match="evil.ckpt holds more than weights"):
        run(compose_train(run_dir, data_dir, [*overrides, "model.smn.trainer.max_steps=4", f"ckpt_path={evil}"]))
    assert not marker.exists()


def test_a_checkpoint_file_names_its_stage_when_several_stages_train(tmp_path):
    stages = {"smn": None, "smpn": None}
    file = tmp_path / "smpn.ckpt"
    file.touch()
    with pytest.raises(ConfigError, match=r"ckpt_path: .*smpn.ckpt is one stage's checkpoint.*ckpt_path=\{smpn: "):
        resume_paths(str(file), stages)
    assert resume_paths({"smpn": str(file)}, stages) == {"smn": None, "smpn": str(file)}
    assert resume_paths({"smn": "last", "smpn": str(file)}, stages) == {"smn": "last", "smpn": str(file)}
    assert resume_paths("last", stages) == {"smn": "last", "smpn": "last"}
    assert resume_paths(str(file), {"smpn": None}) == {"smpn": str(file)}
    with pytest.raises(ConfigError, match=r"ckpt_path: unknown stage\(s\) \['smm'\]"):
        resume_paths({"smm": str(file)}, stages)
    with pytest.raises(ConfigError, match="ckpt_path.smn: .*nope.ckpt does not exist"):
        resume_paths({"smn": str(tmp_path / "nope.ckpt")}, stages)


def test_a_two_stage_run_refuses_one_file_before_any_work(tmp_path, data_dir):
    run_dir = tmp_path / "logs" / "run"
    file = tmp_path / "x.ckpt"
    file.touch()
    with pytest.raises(ConfigError, match="one stage's checkpoint"):
        run(compose_train(run_dir, data_dir, [f"ckpt_path={file}"]))
    assert not run_dir.exists()
