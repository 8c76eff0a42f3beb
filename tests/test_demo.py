"""The demo command end to end at its tiny setting: real nnU-Net planning and preprocessing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_tiny_demo_runs_nnunet_planning_and_a_rerun_skips_every_stage(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    command = [str(BIN / "nnunet-diffrefine"), "demo", "--tiny", "-o", str(tmp_path), "-np", "1"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "verify_dataset_integrity Done" in first.stdout
    assert "[1/2] synth: done" in first.stdout and "[2/2] plan_and_preprocess: done" in first.stdout

    pre = tmp_path / "nnUNet_preprocessed" / "Dataset970_DemoBraTS"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["spacing"] == [
        6.0,
        6.0,
        6.0,
    ]  # 240 mm field of view on 40 voxels
    raw_cases = {
        p.name[: -len(".nii.gz")]
        for p in (tmp_path / "nnUNet_raw" / "Dataset970_DemoBraTS" / "labelsTr").iterdir()
    }
    assert len(raw_cases) == 4
    assert raw_cases <= {p.name.split(".")[0] for p in (pre / "nnUNetPlans_3d_fullres").iterdir()}

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "synth: outputs exist, skipped" in second.stdout
    assert "plan_and_preprocess: outputs exist, skipped" in second.stdout


def test_a_failing_stage_is_one_line_naming_the_stage(tmp_path, capsys):
    from nnunet_diffrefine.demo.stages import Stage, StageError, run_stages

    def boom() -> None:
        raise OSError("disk full")

    with pytest.raises(StageError, match="stage 'train' failed: OSError: disk full"):
        run_stages([Stage("train", "train", boom, lambda: False)], log=lambda _: None)
