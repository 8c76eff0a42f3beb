"""The refinement benchmark (``benchmarks/bench_refinement.py``) keeps its protocol, run for real on
tiny data: MedNeXt with 2-fold cross-validation, CorrDiff on MedNeXt's out-of-fold probabilities.
Checks the invariants from the files nnU-Net and the refiner wrote, not the numbers. One base row: every
base row goes through the same stages (the cross-row checks of the protocol are unit-tested in
``test_benchmark_protocol.py``), and each row costs two nnU-Net trainings.
It runs on another seed and phenotype than the default run (seed 0, adult): the script needs no change
for data nobody tuned on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INTENSITY_SAMPLES

REPO = Path(__file__).resolve().parents[1]
ROWS = {"MedNeXt": "MedNeXtTrainer"}
REFINED = "CoMNeT (MedNeXt + CorrDiff, fold ensemble)"


def _cases(folder: Path, pattern: str = "*.nii.gz") -> set[str]:
    return {p.name.split(".")[0] for p in folder.glob(pattern)}


@pytest.mark.slow
def test_benchmark_trains_every_row_on_the_same_cases_and_the_refiner_only_out_of_fold(tmp_path):
    work, out = tmp_path / "work", tmp_path / "results" / "refinement"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_refinement.py"), "--work", str(work)]
    command += ["--seed", "7", "--phenotype", "pediatric", "--profile", "classic"]  # 32³: the fast grid
    command += ["--shape", "32", "--num-train", "5", "--num-test", "2", "--folds", "2", "--epochs", "1"]
    command += ["--iters", "2", "--refiner-epochs", "1", "--refiner-iters", "2", "--uncertainty-samples", "2"]
    command += ["--intensity-samples", str(INTENSITY_SAMPLES)]
    command += ["--bases", *ROWS, "-o", str(out)]
    environment = dict(os.environ, nnUNet_n_proc_DA="0")  # augmentation in the training process
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    record = json.loads(out.with_suffix(".json").read_text())
    assert record["protocol_problems"] == [] and record["seed"] == 7 and record["phenotype"] == "pediatric"
    assert record["commit"] and out.with_suffix(".md").is_file()
    rows = {r["name"]: r for r in record["rows"]}
    assert set(rows) == {*ROWS, REFINED}
    for key in ("delta_dice", "delta_dice_ci95", "delta_hd95", "delta_hd95_ci95", "wilcoxon_p"):
        assert key in rows[REFINED]
    assert rows[REFINED]["prior"] == "MedNeXt" and rows["MedNeXt"]["prior"] is None

    dataset = next((work / "nnUNet_raw").iterdir())
    training, test = _cases(dataset / "labelsTr"), _cases(dataset / "labelsTs")
    splits = json.loads((work / "nnUNet_preprocessed" / dataset.name / "splits_final.json").read_text())
    results = work / "nnUNet_results" / dataset.name
    for trainer in ROWS.values():  # every row: the same folds, each validated on its own split
        model = next(results.glob(f"{trainer}__*"))
        for k, split in enumerate(splits):
            assert _cases(model / f"fold_{k}" / "validation") == set(split["val"])
        assert {c for s in splits for c in s["val"]} == training

    refiner = json.loads(
        next(results.glob("MedNeXtTrainer__*")).joinpath("fold_0/refiner_corrdiff/refiner.json").read_text()
    )
    seen = set(refiner["training_cases"]) | set(refiner["validation_cases"])
    assert seen == training and not seen & test  # all training cases, never a test case
    fold_of = {c: k for k, s in enumerate(splits) for c in s["val"]}
    for case in seen:  # each case's prior comes from the one fold that did not train on it
        holders = [Path(s) for s in refiner["out_of_fold_sources"] if (Path(s) / f"{case}.npz").is_file()]
        assert [h.parent.name for h in holders] == [f"fold_{fold_of[case]}"]

    predictions = work / "predictions"
    for row in (*ROWS, REFINED):  # every row: the same (no) post-processing, the same test cases
        assert _cases(predictions / row.replace(" ", "_") / "fold_ensemble") == test
    for k in range(len(splits)):  # the test priors were predicted as the refiner's training priors
        args = json.loads(
            (predictions / REFINED.replace(" ", "_") / f"fold_{k}" / "refine_args.json").read_text()
        )
        assert args["prior_mismatch"] == [] and args["postprocessing"]["enabled"] is False
