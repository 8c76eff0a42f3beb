"""Label-based (softmax) BraTS datasets end to end, next to the region-based ones the other tests use.

synth --label-based -> nnU-Net planning -> MedNeXtCorrDiffTrainer (MedNeXt, then CorrDiff) ->
nnUNetv2_predict with probabilities -> refine -> our evaluation and nnU-Net's, per label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import BIN, isolated_nnunet_env, nnunet_commands, run_checked

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.data.brats import label_dataset_json, region_dataset_json

DATASET, NAME = 981, "TinyLabels"
TRAINER, PLANS = "MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU"


def test_label_dataset_json_lists_each_label_and_no_regions():
    labels = label_dataset_json(3, "X")
    regions = region_dataset_json(3, "X")
    assert labels["labels"] == {"background": 0, "NC": 1, "ED": 2, "ET": 3}
    assert "regions_class_order" not in labels and "regions_class_order" in regions
    assert {k: v for k, v in labels.items() if k != "labels"} == {
        k: v for k, v in regions.items() if k not in ("labels", "regions_class_order")
    }


@pytest.mark.slow
def test_label_based_dataset_trains_predicts_refines_and_is_evaluated_per_label(tmp_path, monkeypatch):
    env = isolated_nnunet_env(
        tmp_path,
        DIFFREFINE_NUM_EPOCHS="1",
        DIFFREFINE_ITERS_PER_EPOCH="2",
        DIFFREFINE_VAL_ITERS_PER_EPOCH="1",
        DIFFREFINE_REFINER_PRESET="tiny",
    )
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])  # our own commands run in-process, nnU-Net's as commands
    cli = str(BIN / "nnunet-diffrefine")
    synth = ["synth", "-d", str(DATASET), "-n", NAME, "--num-train", "5", "--num-test", "1", "--shape", "32"]
    assert main([*synth, "--seed", "5", "-np", "1", "--label-based"]) == 0
    raw = Path(env["nnUNet_raw"]) / f"Dataset{DATASET}_{NAME}"
    dataset_json = json.loads((raw / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "NC": 1, "ED": 2, "ET": 3}
    nnunet = nnunet_commands(env)
    nnunet.plan_and_preprocess(DATASET)
    assert main(["plans", "-d", str(DATASET), "--arch", "mednext", "--cpu"]) == 0
    nnunet.train(DATASET, 0, TRAINER, PLANS, resume=False)
    fold = (
        Path(env["nnUNet_results"])
        / f"Dataset{DATASET}_{NAME}"
        / f"{TRAINER}__{PLANS}__3d_fullres"
        / "fold_0"
    )
    assert "LabelDiceCELoss" in json.loads((fold / "debug.json").read_text())["loss"]  # softmax loss
    refiner = json.loads((fold / "refiner_corrdiff" / "refiner.json").read_text())
    assert refiner["dataset"]["regions"] is False and refiner["dataset"]["num_outputs"] == 4

    pred, refined = tmp_path / "pred", tmp_path / "refined"
    nnunet.predict(raw / "imagesTs", pred, DATASET, [0], TRAINER, PLANS, workers=0)
    run_checked(
        [cli, "refine", "-i", str(pred), "-o", str(refined), "-d", str(DATASET), "-tr", TRAINER, "-p", PLANS]
        + ["-f", "0", "--images", str(raw / "imagesTs")],
        env,
    )
    case = next((raw / "labelsTs").glob("*.nii.gz")).name
    probabilities = np.load(refined / case.replace(".nii.gz", ".npz"))["probabilities"]
    assert probabilities.shape == (4, 32, 32, 32)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-4)  # softmax over the four labels
    segmentation = sitk.GetArrayFromImage(sitk.ReadImage(str(refined / case)))
    assert set(np.unique(segmentation)) <= {0, 1, 2, 3}

    evaluate = ["evaluate", str(raw / "labelsTs"), str(refined), "-djfile", str(refined / "dataset.json")]
    assert main([*evaluate, "-o", str(tmp_path / "summary.json"), "-np", "1"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["mean"]) == ["1", "2", "3"]  # one entry per label, not WT/TC/ET
    assert {"Dice", "HD95", "Sensitivity", "Precision"} <= set(summary["mean"]["3"])
    summary_file = nnunet.evaluate_folder(
        raw / "labelsTs", refined, refined / "dataset.json", refined / "plans.json"
    )
    nnunet_summary = json.loads(summary_file.read_text())
    assert sorted(nnunet_summary["mean"]) == ["1", "2", "3"]
