"""Settings through one door: every DIFFREFINE_* variable is read by nnunet_diffrefine.environment, typed and
validated there, and documented in its table and the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnunet_diffrefine import environment as env
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

REPO = Path(__file__).resolve().parents[1]


def test_no_module_but_the_environment_module_names_a_diffrefine_variable():
    quoted = re.compile(r"[\"']DIFFREFINE_[A-Z_]+")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("nnunet_diffrefine", "trainers")
        for path in (REPO / folder).rglob("*.py")
        if path.name != "environment.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert offenders == []


def test_every_variable_is_in_the_module_table_and_the_readme():
    readme = (REPO / "README.md").read_text()
    for name in env.ALL_VARIABLES:
        assert f"``{name}``" in env.__doc__, name
        assert f"`{name}`" in readme, name


def test_the_schedule_is_typed_validated_and_round_trips_through_the_environment():
    schedule = env.trainer_schedule(
        {"DIFFREFINE_NUM_EPOCHS": "3", "DIFFREFINE_LR": "0.1", "DIFFREFINE_SAVE_EVERY": ""}
    )
    assert schedule == env.TrainerSchedule(num_epochs=3, initial_lr=0.1)
    assert schedule.overrides() == {"num_epochs": 3, "initial_lr": 0.1}
    assert env.trainer_schedule(schedule.environment()) == schedule
    cpu = CPUSchedule(epochs=7, iterations=9)
    assert env.trainer_schedule(cpu.environment("MedNeXtTrainer")).overrides() == {
        "num_epochs": 7,
        "num_iterations_per_epoch": 9,
        "num_val_iterations_per_epoch": cpu.val_iterations,
        "warmup_epochs": cpu.warmup_epochs,
        "initial_lr": cpu.adamw_lr,
        "save_every": cpu.save_every,
    }
    with pytest.raises(InputError, match="DIFFREFINE_ITERS_PER_EPOCH='x' is not an integer"):
        env.trainer_schedule({"DIFFREFINE_ITERS_PER_EPOCH": "x"})
    with pytest.raises(InputError, match="DIFFREFINE_NUM_EPOCHS=0 must be >= 1"):
        env.trainer_schedule({"DIFFREFINE_NUM_EPOCHS": "0"})
    with pytest.raises(InputError, match="DIFFREFINE_LR=-1.0 must be a positive number"):
        env.trainer_schedule({"DIFFREFINE_LR": "-1"})
    assert env.trainer_schedule({"DIFFREFINE_WARMUP_EPOCHS": "0"}).warmup_epochs == 0
    kept = env.trainer_schedule({"DIFFREFINE_KEEP_CHECKPOINTS": "40, 30,40"})
    assert kept.keep_checkpoints == (30, 40) and kept.environment() == {
        "DIFFREFINE_KEEP_CHECKPOINTS": "30,40"
    }
    assert (
        CPUSchedule(keep_checkpoints=(30,)).environment("MedNeXtTrainer")["DIFFREFINE_KEEP_CHECKPOINTS"]
        == "30"
    )
    assert "DIFFREFINE_KEEP_CHECKPOINTS" not in CPUSchedule().environment("MedNeXtTrainer")
    with pytest.raises(InputError, match="DIFFREFINE_KEEP_CHECKPOINTS='30;40' is not a comma-separated"):
        env.trainer_schedule({"DIFFREFINE_KEEP_CHECKPOINTS": "30;40"})
    with pytest.raises(InputError, match="DIFFREFINE_KEEP_CHECKPOINTS=0,5 must name epochs >= 1"):
        env.trainer_schedule({"DIFFREFINE_KEEP_CHECKPOINTS": "0,5"})


def test_the_refiner_stage_and_the_other_variables():
    settings = env.refiner_stage_settings(
        "corrdiff", {"DIFFREFINE_REFINER_PRESET": "tiny", "DIFFREFINE_REFINER_ITERS": "3"}
    )
    assert settings.preset == "tiny" and settings.iterations_per_epoch == 3
    with pytest.raises(InputError, match="DIFFREFINE_REFINER_PRESET=paper, DIFFREFINE_REFINER_LR=nope"):
        env.refiner_stage_settings("corrdiff", {"DIFFREFINE_REFINER_LR": "nope"})
    assert env.swin_pretrained_weights({}) is None
    assert env.swin_pretrained_weights({"DIFFREFINE_SWIN_PRETRAINED": "/w.pt"}) == Path("/w.pt")
    assert env.report_model({"DIFFREFINE_REPORT_MODEL": "m"}) == "m" and env.report_model({}) is None
    assert env.report_secret_file({"DIFFREFINE_REPORT_SECRET_FILE": "/k"}) == Path("/k")


def test_refiner_stage_variables_round_trip_and_refuse_a_setting_no_variable_sets():
    from nnunet_diffrefine.environment import refiner_stage_environment, refiner_stage_settings

    env = refiner_stage_environment("tiny", max_epochs=3, learning_rate=2e-4, inference_steps=2)
    settings = refiner_stage_settings("corrdiff", env)
    assert (settings.preset, settings.max_epochs, settings.learning_rate, settings.inference_steps) == (
        "tiny",
        3,
        2e-4,
        2,
    )
    with pytest.raises(InputError, match="weight_decay"):
        refiner_stage_environment(weight_decay=0.1)
