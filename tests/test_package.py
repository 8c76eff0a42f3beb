"""Packaging, the command line and ``nnunet-diffrefine env`` for editable and wheel installs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from nnunet_diffrefine.cli.env import env_lines
from nnunet_diffrefine.cli.main import SUBCOMMANDS, main
from nnunet_diffrefine.workspace.folders import trainer_folder

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nnunet_diffrefine").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"
    assert "nnunet_diffrefine.trainers" in listed


def test_env_points_at_the_repository_trainer_folder_for_an_editable_install():
    assert trainer_folder() == (REPO / "trainers").resolve()
    lines = env_lines(environ={"nnUNet_raw": "/data/raw"})
    assert lines[0] == f"export nnUNet_extTrainer={REPO / 'trainers'}"
    assert "# nnUNet_raw is set: /data/raw" in lines
    assert any(line.startswith("# nnUNet_preprocessed is unset") for line in lines)
    assert any(line.startswith("# nnUNet_results is unset") for line in lines)


def test_env_keeps_other_trainer_folders_and_can_set_the_nnunet_folders(tmp_path):
    lines = env_lines(environ={"nnUNet_extTrainer": "/other/trainers"}, root=str(tmp_path))
    assert lines[0] == f"export nnUNet_extTrainer={REPO / 'trainers'}{os.pathsep}/other/trainers"
    assert f"export nnUNet_results={tmp_path / 'nnUNet_results'}" in lines


def test_env_output_evaluates_in_a_shell():
    script = f'eval "$({BIN / "nnunet-diffrefine"} env --root /tmp/x)"; echo "$nnUNet_extTrainer|$nnUNet_raw"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert out == f"{REPO / 'trainers'}|/tmp/x/nnUNet_raw"


def test_env_exports_the_cpu_schedule_that_the_trainers_read():
    from nnunet_diffrefine.training.schedule import schedule_overrides

    script = f'eval "$({BIN / "nnunet-diffrefine"} env --cpu-schedule MedNeXtTrainer)"; env'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "DIFFREFINE_"))}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=True).stdout
    exported = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("DIFFREFINE_"))
    assert schedule_overrides(exported) == {
        "num_epochs": 40,
        "num_iterations_per_epoch": 25,
        "num_val_iterations_per_epoch": 5,
        "warmup_epochs": 2,
        "initial_lr": 1e-3,
        "save_every": 5,
    }


def test_wheel_ships_the_trainer_folder_and_env_finds_it(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("nnunet_diffrefine-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnunet_diffrefine/trainers/__init__.py" in names
    assert {
        f"nnunet_diffrefine/plans/{a}.json" for a in ("mednext", "swinunetr", "resunet", "segresnet")
    } <= set(names)
    assert "nnunet_diffrefine/data/synth.py" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))

    def from_the_wheel(code: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    out = from_the_wheel(
        "from nnunet_diffrefine.workspace.folders import trainer_folder; print(trainer_folder())"
    )
    assert out == str((site / "nnunet_diffrefine" / "trainers").resolve())
    presets = from_the_wheel(
        "from nnunet_diffrefine.training.architectures import ARCHITECTURES; print(sorted(ARCHITECTURES))"
    )
    assert presets == "['mednext', 'resunet', 'segresnet', 'swinunetr']", (
        "the plans presets load from the wheel"
    )


def test_dockerfile_copies_every_folder_the_package_is_built_from():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"nnunet_diffrefine", *setuptools["package-dir"].values()}
    dockerfile = (REPO / "Dockerfile").read_text()
    for folder in folders:
        assert f"COPY {folder} ./{folder}" in dockerfile, f"the Docker image would be built without {folder}/"


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert command in capsys.readouterr().out


def test_evaluate_neither_parses_nor_scores_through_torch(tmp_path):
    """Only the chosen subcommand's options are built, and the BraTS metrics (HD95's surfel table
    included) need no torch or MONAI import: each costs seconds in every evaluation process."""
    script = (
        "import sys\n"
        "import numpy as np\n"
        "from nnunet_diffrefine.cli.main import build_parser\n"
        "from nnunet_diffrefine.evaluation.case import evaluate_arrays\n"
        "build_parser('evaluate').parse_args(['evaluate', 'gt', 'pred', '-djfile', 'dataset.json'])\n"
        "a = np.zeros((8, 8, 8), np.uint8); a[2:5, 2:5, 2:5] = 1\n"
        "evaluate_arrays(a, np.roll(a, 1, 0), (1, 1, 1), [(1,)])\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_bad_input_is_one_error_line_without_traceback(tmp_path, capsys):
    assert main(["synth", "-d", "3", "--shape", "4", "5", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnunet-diffrefine synth: error:")


def test_console_script_runs():
    out = subprocess.run(
        [str(BIN / "nnunet-diffrefine"), "--version"], capture_output=True, text=True, check=True
    )
    assert "nnunet-diffrefine" in out.stdout
