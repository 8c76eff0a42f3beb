"""Ke et al.'s diffusion refiners inside nnU-Net: the Swin-UNETR + DDPM / MedSegDiff trainers, the
``train-refiner`` command for an already trained model, and several refined rows in one benchmark (slow)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN, DATASET, nnunet_train, trained_model, with_base_stage_of

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.refine.registry import refiner_settings

PLANS = "nnUNetPlansSwinUNETRCPU"
SHORT_REFINER = {"DIFFREFINE_REFINER_PRESET": "tiny"}
TINY = ["--preset", "tiny"]
MULTIPLES = {"ddpm": 8, "ddpm_scratch": 8, "medsegdiff": 4, "medsegdiff_scratch": 4}


def _check_refiner(fold: Path, name: str) -> dict:
    folder = fold / f"refiner_{name}"
    for file in ("refiner.json", "refiner_final.pth", "refiner_latest.pth", "training_history.json"):
        assert (folder / file).is_file(), f"{folder / file}"
    config = json.loads((folder / "refiner.json").read_text())
    assert config["refiner"] == name and config["dataset"]["dataset_name"] == "Dataset980_TinyTrain"
    validation_cases = sorted(p.name[: -len(".npz")] for p in (fold / "validation").glob("*.npz"))
    assert sorted(set(config["training_cases"]) | set(config["validation_cases"])) == validation_cases
    assert all(p % MULTIPLES[name] == 0 for p in config["settings"]["patch_size"])
    expected = refiner_settings(name, "tiny")
    assert (
        config["settings"]["preset"] == "tiny"
        and config["settings"]["inference_steps"] == expected.inference_steps
    )
    return config


@pytest.mark.slow
def test_swin_diffusion_trainers_train_the_refiner_after_swin_and_resume_between_the_stages(tiny_nnunet):
    env = dict(tiny_nnunet, **SHORT_REFINER)
    first = trained_model(env, "SwinUNETRMedSegDiffTrainer", PLANS)
    _check_refiner(first / "fold_0", "medsegdiff")

    # a run interrupted after the Swin-UNETR stage; --c trains only the refiner (the scratch twins are the
    # same classes with another refiner name: tests/test_training_units.py)
    for trainer, name in (("SwinUNETRDDPMTrainer", "ddpm"),):
        fold = with_base_stage_of(env, "SwinUNETRTrainer", trainer, PLANS) / "fold_0"
        out = nnunet_train(env, trainer, PLANS, extra=("--npz", "--c"))
        assert f"Using trainer '{trainer}'" in out.stdout
        assert "Epoch 0" not in out.stdout, "the finished Swin-UNETR stage is not trained again"
        assert f"refiner stage: training {name}" in out.stdout
        _check_refiner(fold, name)


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nnunet-diffrefine"), *args], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_train_refiner_for_a_trained_model_then_benchmark_several_refined_rows(
    tiny_nnunet, tmp_path, monkeypatch, capsys
):
    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark
    from nnunet_diffrefine.workspace import NnUNetFolders

    env = dict(tiny_nnunet, **SHORT_REFINER)
    folders = NnUNetFolders.from_mapping(env)
    model = trained_model(env, "SwinUNETRTrainer", PLANS)
    fold = model / "fold_0"
    base = ["-d", str(DATASET), "-tr", "SwinUNETRTrainer", "-p", PLANS, "-f", "0"]

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])

    def refused(*args: str) -> str:
        """The one error line of the command run in-process (exit code 1)."""
        capsys.readouterr()
        assert main(["train-refiner", *base, *args]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnunet-diffrefine train-refiner: error:"), lines
        return lines[0]

    with pytest.raises(SystemExit) as usage:
        main(["train-refiner", *base, "--refiner", "nonsense"])
    assert usage.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err
    assert "start_fraction='2' must be <= 1" in refused("--refiner", "ddpm", "--set", "start_fraction=2")
    missing = refused("-f", "3", "--refiner", "ddpm")
    assert "fold_3" in missing and "checkpoint_final.pth" in missing
    assert "more than one" in refused("--refiner", "ddpm", "--oof-from", "0", "0")

    for name in ("ddpm", "medsegdiff"):
        result = _cli(env, "train-refiner", *base, "--refiner", name, *TINY, "--epochs", "2", "--lr", "3e-3")
        assert result.returncode == 0, result.stderr
        config = _check_refiner(fold, name)
        assert config["settings"]["max_epochs"] == 2 and config["settings"]["learning_rate"] == 3e-3
        assert "learning_rate=0.003" in result.stdout, "the settings used are printed"
        latest = torch.load(fold / f"refiner_{name}" / "refiner_latest.pth", weights_only=False)
        assert latest["settings"] == config["settings"], "and saved with the checkpoint"
    history = (fold / "refiner_ddpm" / "training_history.json").read_text()
    assert "already holds a trained refiner" in refused("--refiner", "ddpm", *TINY)
    assert (fold / "refiner_ddpm" / "training_history.json").read_text() == history, "nothing overwritten"
    # a variant with other settings next to the default one, and the refine argument that names it
    tagged_args = ["--set", "perturbed_priors=0"]
    tagged = _cli(env, "train-refiner", *base, "--refiner", "ddpm", "--tag", "realonly", *TINY, *tagged_args)
    assert tagged.returncode == 0, tagged.stderr
    variant = json.loads((fold / "refiner_ddpm__realonly" / "refiner.json").read_text())
    assert variant["refiner"] == "ddpm" and variant["settings"]["perturbed_priors"] == 0
    assert (
        json.loads((fold / "refiner_ddpm" / "refiner.json").read_text())["settings"]["perturbed_priors"] > 0
    )
    assert "letters, digits" in refused("--refiner", "ddpm", "--tag", "a/b")

    trained_model(env, "nnUNetTrainerCustomSchedule", "nnUNetPlansCPU")
    models = [
        parse_model("Stock=nnUNetTrainerCustomSchedule:nnUNetPlansCPU"),
        parse_model(f"Swin=SwinUNETRTrainer:{PLANS}+ddpm+medsegdiff"),
    ]
    out = run_benchmark(
        folders,
        DATASET,
        models,
        [0],
        split="test",
        output=tmp_path / "bench",
        use_mirroring=False,
        progress=False,
    )
    record = json.loads((out / "benchmark.json").read_text())
    assert [r["name"] for r in record["models"]] == ["Stock", "Swin", "Swin + DDPM", "Swin + MedSegDiff"]
    predictions = out / "predictions"
    assert sorted(p.name for p in predictions.iterdir()) == ["Stock", "Swin", "Swin_DDPM", "Swin_MedSegDiff"]
    swin, ddpm = record["models"][1]["folds"][0], record["models"][2]["folds"][0]
    assert ddpm["seconds_per_case"] > swin["seconds_per_case"], "refined rows add the refinement's seconds"
    assert "| Swin + MedSegDiff |" in (out / "benchmark.md").read_text()

    # several samples per case: their mean, and a per-voxel standard deviation beside the result (applied
    # everywhere: the gate, decided on this tiny model's 1 validation case, keeps the prior, whose spread is 0)
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

    images = Path(env["nnUNet_raw"]) / "Dataset980_TinyTrain" / "imagesTs"
    refined = refine_folder(
        predictions / "Swin" / "fold_0",
        tmp_path / "sampled",
        model,
        [0],
        images,
        RefineOptions(refiner="ddpm", overrides={"num_samples": 2}, force_refiner=True, progress=False),
    )
    (case,) = [p.name for p in refined.glob("*.npz")]
    std = np.load(refined / "uncertainty" / case)["std"]
    assert std.shape == (3, 40, 40, 40) and std.min() >= 0 and std.max() > 0
    single = refine_folder(
        predictions / "Swin" / "fold_0",
        tmp_path / "single",
        model,
        [0],
        images,
        RefineOptions(refiner="ddpm", progress=False),
    )
    assert not (single / "uncertainty").exists()
