"""The demo command end to end at its tiny setting: every stage with the real nnU-Net commands; a re-run skips them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
STAGES = [
    "synth",
    "plan_and_preprocess",
    "plans",
    "train_nnunet",
    "train_mednext",
    "train_corrdiff",
    "benchmark",
    "report",
]


@pytest.mark.slow
def test_tiny_demo_runs_the_whole_pipeline_and_a_rerun_skips_every_stage(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "DIFFREFINE_", "OPENAI_"))}
    env["nnUNet_n_proc_DA"] = "0"  # augmentation in the training process: two iterations need no workers
    command = [str(BIN / "nnunet-diffrefine"), "demo", "--tiny", "-o", str(tmp_path), "-np", "1"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "verify_dataset_integrity Done" in first.stdout
    for i, stage in enumerate(STAGES, start=1):
        assert f"[{i}/{len(STAGES)}] {stage}: done" in first.stdout, stage

    pre = tmp_path / "nnUNet_preprocessed" / "Dataset970_DemoBraTS"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    # --tiny runs the realistic profile (the synthesis path the default classic demo skips), at 4 mm
    assert plans["configurations"]["3d_fullres"]["spacing"] == [4.0, 4.0, 4.0]
    assert "35 x 42 x 38 voxels at 4 mm (realistic)" in first.stdout
    labels = tmp_path / "nnUNet_raw" / "Dataset970_DemoBraTS" / "labelsTr"
    raw_cases = {p.name[: -len(".nii.gz")] for p in labels.iterdir()}
    assert len(raw_cases) == 5
    assert raw_cases <= {p.name.split(".")[0] for p in (pre / "nnUNetPlans_3d_fullres").iterdir()}
    benchmark = tmp_path / "nnUNet_results" / "Dataset970_DemoBraTS" / "benchmark_test"
    table = (benchmark / "benchmark.md").read_text()
    for row in ("| nnU-Net |", "| MedNeXt |", "| MedNeXt + CorrDiff |"):
        assert row in table and row in first.stdout, row
    assert (benchmark / "benchmark.csv").is_file() and (benchmark / "benchmark_dice.png").is_file()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "AI-generated draft" in report and (tmp_path / "report" / "measurements.json").is_file()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    for stage in STAGES:
        assert f"{stage}: outputs exist, skipped" in second.stdout, stage


def test_a_failing_stage_is_one_line_naming_the_stage():
    from nnunet_diffrefine.workspace import Stage, StageError, StageRunner

    def boom() -> None:
        raise OSError("disk full")

    with pytest.raises(StageError, match="stage 'train' failed: OSError: disk full"):
        StageRunner(log=lambda _: None).run([Stage("train", "train", boom, lambda: False)])
