"""Each trainer through the real nnU-Net commands on tiny synthetic data (slow).

nnUNetv2_train for a couple of iterations (once per session, shared with the other tests) ->
checkpoint_final.pth, plans.json, validation summary; ``--c`` resumes MedNeXt and Swin-UNETR for a
second epoch;
nnUNetv2_predict with the checkpoint writes segmentations and probabilities of the right shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import DATASET, nnunet_commands, trained_model
from conftest import nnunet_train as _train

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.training.architectures import ARCHITECTURES

TRAINERS = {
    "MedNeXtTrainer": "mednext",
    "SwinUNETRTrainer": "swinunetr",
    "ResUNetTrainer": "resunet",
    "SegResNetTrainer": "segresnet",
}

# resumed from their checkpoint: the networks written here (MedNeXt with GRN; Swin-UNETR with its encoder
# loading); the MONAI networks' state dicts go through the same nnU-Net resume code
RESUMED = ("MedNeXtTrainer", "SwinUNETRTrainer")


@pytest.mark.slow
@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_train_resume_predict(trainer, tiny_nnunet, tmp_path):
    spec = ARCHITECTURES[TRAINERS[trainer]]
    plans_name = f"nnUNetPlans{spec.plans_suffix}CPU"
    env = dict(
        tiny_nnunet,
        DIFFREFINE_NUM_EPOCHS="1",
        DIFFREFINE_ITERS_PER_EPOCH="2",
        DIFFREFINE_VAL_ITERS_PER_EPOCH="1",
    )
    results = trained_model(env, trainer, plans_name)  # shared: trained once per session, 1 epoch, --npz
    fold = results / "fold_0"
    for name in ("checkpoint_final.pth", "progress.png", "debug.json", "validation/summary.json"):
        assert (fold / name).is_file(), name
    assert list((fold / "validation").glob("*.npz")), "--npz keeps the validation probabilities"
    logs = "".join(log.read_text() for log in fold.glob("training_log_*.txt"))
    assert "network weights in memory format channels_last_3d (CPU)" in logs, "the CPU layout is used"
    saved_plans = json.loads((results / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert saved_plans["architecture"]["network_class_name"] == spec.class_name
    assert all(p % spec.patch_multiple == 0 for p in saved_plans["patch_size"])
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["current_epoch"] == 1 and checkpoint["trainer_name"] == trainer

    if trainer in RESUMED:  # resume: the finished epoch is loaded and one more is trained
        second = _train(env, trainer, plans_name, epochs=2, extra=("--npz", "--c"))
        assert f"Using trainer '{trainer}'" in second.stdout
        assert "Epoch 1" in second.stdout and "Epoch 0" not in second.stdout
        checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        assert checkpoint["current_epoch"] == 2

    out = tmp_path / "pred"
    images = Path(env["nnUNet_raw"]) / "Dataset980_TinyTrain" / "imagesTs"
    nnunet_commands(env).predict(images, out, DATASET, [0], trainer, plans_name, mirroring=False, workers=0)
    segs = sorted(out.glob("*.nii.gz"))
    assert len(segs) == 1
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(segs[0])))
    assert seg.shape == (40, 40, 40) and set(np.unique(seg)) <= {0, 1, 2, 3}
    probabilities = np.load(str(segs[0]).replace(".nii.gz", ".npz"))["probabilities"]
    assert probabilities.shape == (3, 40, 40, 40) and probabilities.dtype == np.float32
    assert np.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.slow
def test_benchmark_against_stock_nnunet_writes_table_csv_and_chart(tiny_nnunet, tmp_path, monkeypatch):
    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark
    from nnunet_diffrefine.workspace import NnUNetFolders

    env = tiny_nnunet
    folders = NnUNetFolders.from_mapping(env)
    results = Path(env["nnUNet_results"]) / "Dataset980_TinyTrain"
    for trainer, plans in (
        ("nnUNetTrainerCustomSchedule", "nnUNetPlansCPU"),
        ("SegResNetTrainer", "nnUNetPlansSegResNetCPU"),
    ):
        if not (results / f"{trainer}__{plans}__3d_fullres" / "fold_0" / "checkpoint_final.pth").is_file():
            _train(env, trainer, plans)
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])
    models = [
        parse_model("Stock=nnUNetTrainerCustomSchedule:nnUNetPlansCPU"),
        parse_model("SegResNetTrainer:nnUNetPlansSegResNetCPU"),
    ]
    refiner_env = {"DIFFREFINE_REFINER_PRESET": "tiny"}
    trained_model(env, "MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU", extra_env=refiner_env)
    refined = parse_model("MedNeXt=MedNeXtCorrDiffTrainer:nnUNetPlansMedNeXtCPU+corrdiff")
    with pytest.raises(InputError, match="--split test"):
        run_benchmark(
            folders, DATASET, [*models, refined], [0], split="cv", output=tmp_path / "bad", progress=False
        )
    for split, rows in (("cv", models), ("test", [*models, refined])):
        out = run_benchmark(
            folders,
            DATASET,
            rows,
            [0],
            split=split,
            output=tmp_path / split,
            use_mirroring=False,
            progress=False,
        )
        table = (out / "benchmark.md").read_text()
        assert "| Stock |" in table and "| SegResNetTrainer (nnUNetPlansSegResNetCPU) |" in table
        assert "Dice TC | Dice WT | Dice ET | Dice Avg | HD95 (mm)" in table
        record = json.loads((out / "benchmark.json").read_text())
        expected = ["Stock", "SegResNetTrainer (nnUNetPlansSegResNetCPU)"]
        expected += ["MedNeXt", "MedNeXt + CorrDiff"] if split == "test" else []
        assert [r["name"] for r in record["models"]] == expected
        assert (
            len((out / "benchmark.csv").read_text().splitlines()) == 1 + len(expected) * 3
        )  # header + rows x regions
        assert (out / "benchmark_dice.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        fold = record["models"][1]["folds"][0]
        assert set(fold["per_region"]) == {"TC", "WT", "ET"}
        assert 0.0 <= fold["per_region"]["WT"]["Dice"] <= 1.0
        if split == "test":
            assert fold["seconds_per_case"] > 0 and fold["peak_rss_mb"] > 100
            assert (out / "predictions" / "Stock" / "fold_0" / "timings.json").is_file()
            base, refined_row = record["models"][2]["folds"][0], record["models"][3]["folds"][0]
            assert refined_row["seconds_per_case"] > base["seconds_per_case"], (
                "refined row = prediction + refinement"
            )
            assert "| MedNeXt + CorrDiff |" in table
        else:
            assert fold["seconds_per_case"] is None
    with pytest.raises(FileExistsError):
        run_benchmark(folders, DATASET, models, [0], split="cv", output=tmp_path / "cv", progress=False)
    official = run_benchmark(  # the same rows under the official protocol (the dataset's GoAT groups)
        folders,
        DATASET,
        models,
        [0],
        split="cv",
        output=tmp_path / "official",
        protocol="brats-official",
        progress=False,
    )
    table = (official / "benchmark.md").read_text()
    assert (
        "Dice TC | Dice WT | Dice ET | Dice Avg | HD95 (voxels; mm on 1 mm grids) ↓ | NSD | Lesion DSC"
        in table
    )
    record = json.loads((official / "benchmark.json").read_text())
    assert record["protocol"] == "brats-official" and record["official_config"] == "GoAT"
    summary = json.loads((official / "evaluations" / "Stock" / "fold_0" / "summary.json").read_text())
    assert summary["protocol"] == "brats-official" and set(summary["mean"]) == {"et", "tc", "wt"}
