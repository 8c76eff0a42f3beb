"""The refinement framework with nnU-Net: postprocessing, identity exactness, nnU-Net's tools on the
refined folder, bad input, and MedNeXtCorrDiffTrainer's two stages (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import BIN, DATASET, nnunet_commands, nnunet_train, trained_model, with_base_stage_of

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.refine.base import DatasetSignature
from nnunet_diffrefine.refine.postprocess import PostprocessConfig, postprocess_segmentation
from nnunet_diffrefine.refine.registry import create_refiner


class _RegionLabels:
    """The label manager nnU-Net builds for the BraTS region dataset.json."""

    def __new__(cls):
        from nnunetv2.utilities.label_handling.label_handling import LabelManager

        return LabelManager(
            {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [1, 3], "enhancing_tumor": [3]},
            [2, 1, 3],
        )


def test_postprocessing_removes_specks_and_fills_solid_regions_but_not_the_enhancing_ring():
    seg = np.zeros((20, 20, 20), np.uint8)
    seg[4:14, 4:14, 4:14] = 2
    seg[6:12, 6:12, 6:12] = 3  # enhancing shell ...
    seg[8:10, 8:10, 8:10] = 1  # ... around a necrotic core
    seg[9, 9, 9] = 0  # a hole in the whole tumor
    seg[17, 17, 17] = 2  # a one-voxel speck
    out = postprocess_segmentation(seg, _RegionLabels(), PostprocessConfig(min_component_voxels=2))
    assert out[17, 17, 17] == 0, "speck removed"
    assert out[9, 9, 9] == 1, "hole filled inside WT and TC, repainted as core"
    assert (out[8:10, 8:10, 8:10] == 1).sum() == 8 and (out == 3).sum() == (seg == 3).sum()
    assert np.array_equal(
        postprocess_segmentation(seg, _RegionLabels(), PostprocessConfig(enabled=False)), seg
    )


def _predict(env: dict, trainer: str, plans: str, out: Path) -> Path:
    images = Path(env["nnUNet_raw"]) / "Dataset980_TinyTrain" / "imagesTs"
    nnunet_commands(env).predict(images, out, DATASET, [0], trainer, plans, mirroring=False, workers=0)
    return images


def _refine_cli(env: dict, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nnunet-diffrefine"), "refine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_identity_refiner_reproduces_nnunet_files_and_nnunet_accepts_the_folder(
    tiny_nnunet, tmp_path, monkeypatch, capsys
):
    env = tiny_nnunet
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])  # for the in-process runs of the command
    trainer, plans = "nnUNetTrainerCustomSchedule", "nnUNetPlansCPU"
    model = trained_model(env, trainer, plans)
    pred = tmp_path / "pred"
    images = _predict(env, trainer, plans, pred)
    create_refiner(
        "identity",
        DatasetSignature.from_dataset_json(
            "Dataset980_TinyTrain", json.loads((model / "dataset.json").read_text())
        ),
    ).save(model / "fold_0" / "refiner_identity")
    common = [
        "-d",
        str(DATASET),
        "-tr",
        trainer,
        "-p",
        plans,
        "-f",
        "0",
        "--images",
        str(images),
        "--refiner",
        "identity",
    ]
    result = _refine_cli(env, ["-i", str(pred), "-o", str(tmp_path / "refined"), *common, "--no-postprocess"])
    assert result.returncode == 0, result.stderr
    case = next(pred.glob("*.nii.gz")).name
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "refined" / case)))
    theirs = sitk.GetArrayFromImage(sitk.ReadImage(str(pred / case)))
    assert np.array_equal(ours, theirs)
    npz = case.replace(".nii.gz", ".npz")
    assert np.array_equal(
        np.load(tmp_path / "refined" / npz)["probabilities"], np.load(pred / npz)["probabilities"]
    )
    for name in (
        "dataset.json",
        "plans.json",
        "postprocessing.json",
        "refine_args.json",
        case.replace(".nii.gz", ".pkl"),
    ):
        assert (tmp_path / "refined" / name).is_file(), name

    # a re-run resumes (nothing to do; in-process: the same command without a new interpreter) and
    # nnU-Net's own tools accept the refined folder
    assert (
        main(["refine", "-i", str(pred), "-o", str(tmp_path / "refined"), *common, "--no-postprocess"]) == 0
    )
    nnunet = nnunet_commands(env)
    nnunet.ensemble([pred, tmp_path / "refined"], tmp_path / "ens")
    assert (tmp_path / "ens" / case).is_file()
    labels = Path(env["nnUNet_raw"]) / "Dataset980_TinyTrain" / "labelsTs"
    refined = tmp_path / "refined"
    summary = nnunet.evaluate_folder(labels, refined, refined / "dataset.json", refined / "plans.json")
    assert "foreground_mean" in json.loads(summary.read_text())

    # the benchmark treats a refined row as its base row: an identity refiner scores exactly as its prior
    # (no post-processing of the refined row only)
    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark
    from nnunet_diffrefine.workspace import NnUNetFolders

    bench = run_benchmark(
        NnUNetFolders.from_mapping(env),
        DATASET,
        [parse_model(f"Stock={trainer}:{plans}+identity")],
        [0],
        split="test",
        output=tmp_path / "bench",
        use_mirroring=False,
        progress=False,
    )
    rows = json.loads((bench / "benchmark.json").read_text())["models"]
    assert len(rows) == 2 and rows[1]["name"].startswith("Stock + ")
    assert rows[0]["folds"][0]["per_region"] == rows[1]["folds"][0]["per_region"]
    base_folder, refined_folder = (p / "fold_0" for p in sorted((bench / "predictions").iterdir()))
    assert base_folder.parent.name == "Stock" and list(base_folder.glob("*.nii.gz"))
    for seg in base_folder.glob("*.nii.gz"):
        base_labels, refined_labels = (
            sitk.GetArrayFromImage(sitk.ReadImage(str(f))) for f in (seg, refined_folder / seg.name)
        )
        assert np.array_equal(base_labels, refined_labels), seg.name

    # bad input: one clear error each, and nothing written
    broken = tmp_path / "broken"

    def expect_error(prepare, message: str, extra: list[str] | None = None) -> None:
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(pred, broken)
        prepare(broken)
        out = tmp_path / "never"
        capsys.readouterr()
        code = main(["refine", "-i", str(broken), "-o", str(out), *common, *(extra or [])])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0], lines
        assert lines[0].startswith("nnunet-diffrefine refine: error:") and not out.exists()

    def nan_probs(folder: Path) -> None:
        p = np.load(folder / npz)["probabilities"]
        p[0, 0, 0, 0] = np.nan
        np.savez_compressed(folder / npz, probabilities=p)

    def wrong_shape(folder: Path) -> None:
        np.savez_compressed(folder / npz, probabilities=np.load(folder / npz)["probabilities"][:2])

    def truncate(suffix: str):
        def prepare(folder: Path) -> None:
            target = folder / npz.replace(".npz", suffix)
            target.write_bytes(target.read_bytes()[:40])

        return prepare

    expect_error(nan_probs, "NaN")
    expect_error(wrong_shape, "2 probability channels, the model has 3")
    expect_error(truncate(".npz"), f"{npz}: unreadable")
    expect_error(truncate(".pkl"), f"{npz.replace('.npz', '.pkl')}: unreadable")
    expect_error(lambda f: None, "--pp-fill-holes XX: not a region", ["--pp-fill-holes", "XX"])
    expect_error(lambda f: None, "fold(s) 1, 3 have no trained 'identity' refiner", ["-f", "0", "1", "3"])
    foreign = tmp_path / "foreign"  # a folder refine did not write is never written into
    foreign.mkdir()
    (foreign / "dataset.json").write_text("{}")
    capsys.readouterr()
    assert main(["refine", "-i", str(pred), "-o", str(foreign), *common, "--overwrite"]) == 1
    assert "refine did not write (dataset.json" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["dataset.json"]
    images_missing = tmp_path / "images_missing"
    shutil.copytree(images, images_missing, dirs_exist_ok=True)
    next(images_missing.glob("*_0002.nii.gz")).unlink()
    expect_error(lambda f: None, "missing image channel 2", ["--images", str(images_missing)])
    config = model / "fold_0" / "refiner_identity" / "refiner.json"
    kept = config.read_text()
    other = create_refiner("identity", DatasetSignature("Dataset123_Other", 4, 3, True, {"background": 0}))
    other.save(config.parent)
    expect_error(lambda f: None, "trained for Dataset123_Other")
    config.write_text(kept)


@pytest.mark.slow
def test_mednext_corrdiff_trainer_trains_the_refiner_stage_resumes_and_refines(tiny_nnunet, tmp_path):
    env = dict(
        tiny_nnunet,
        DIFFREFINE_REFINER_PRESET="tiny",
        DIFFREFINE_REFINER_PATIENCE="5",
        DIFFREFINE_REFINER_EPOCHS="2",
        DIFFREFINE_REFINER_ITERS="3",
        DIFFREFINE_REFINER_STEPS="2",
    )
    trainer, plans = "MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU"
    # MedNeXt's stage is the shared MedNeXtTrainer model (both stages in one call: test_label_based.py)
    model = with_base_stage_of(env, "MedNeXtTrainer", trainer, plans)
    first = nnunet_train(env, trainer, plans, extra=("--npz", "--c"))
    assert "Epoch 0" not in first.stdout and "refiner stage: training corrdiff" in first.stdout
    fold = model / "fold_0"
    refiner_dir = fold / "refiner_corrdiff"
    for name in ("refiner.json", "refiner_final.pth", "refiner_latest.pth", "training_history.json"):
        assert (refiner_dir / name).is_file(), name
    assert (fold / "checkpoint_final.pth").is_file() and list((fold / "validation").glob("*.npz"))
    config = json.loads((refiner_dir / "refiner.json").read_text())
    assert config["refiner"] == "corrdiff" and config["settings"]["inference_steps"] == 2
    assert config["settings"]["preset"] == "tiny" and config["settings"]["max_epochs"] == 2
    assert config["dataset"]["dataset_name"] == "Dataset980_TinyTrain"
    assert config["training_priors"] == {
        "mirroring": True,
        "num_folds": 1,
        "source": "nnU-Net final validation (out-of-fold)",
    }

    # --c resumes the interrupted refiner stage from refiner_latest.pth
    (refiner_dir / "refiner_final.pth").unlink()
    (refiner_dir / "refiner.json").unlink()
    resumed = nnunet_train(dict(env, DIFFREFINE_REFINER_EPOCHS="3"), trainer, plans, extra=("--npz", "--c"))
    assert "corrdiff: resuming at epoch 2" in resumed.stdout
    assert len(json.loads((refiner_dir / "training_history.json").read_text())["epochs"]) == 3

    pred = tmp_path / "pred"
    images = _predict(env, trainer, plans, pred)
    result = _refine_cli(
        env,
        [
            "-i",
            str(pred),
            "-o",
            str(tmp_path / "refined"),
            "-d",
            str(DATASET),
            "-tr",
            trainer,
            "-p",
            plans,
            "-f",
            "0",
            "--images",
            str(images),
            "--prior-disable-tta",  # nnUNetv2_predict records no settings: say how the priors were made
        ],
    )
    assert result.returncode == 0, result.stderr
    # the priors were predicted without mirroring, the out-of-fold ones with it: said and recorded
    assert (
        "warning: the refiners were trained on other priors than these: test-time mirroring True in "
        in result.stderr
    )
    args = json.loads((tmp_path / "refined" / "refine_args.json").read_text())
    assert args["prior_mismatch"] == ["test-time mirroring True in training, False here"]
    case = next(pred.glob("*.nii.gz")).name
    refined = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "refined" / case)))
    assert refined.shape == (40, 40, 40) and set(np.unique(refined)) <= {0, 1, 2, 3}
    probs = np.load(tmp_path / "refined" / case.replace(".nii.gz", ".npz"))["probabilities"]
    assert probs.shape == (3, 40, 40, 40) and np.isfinite(probs).all()
    # the validation gate: saved with the refiner, printed per region, applied per channel
    gate = json.loads((refiner_dir / "refiner.json").read_text())["gate"]
    assert set(gate["blends"]) == {"0", "1", "2"} and gate["regions"] is True
    assert json.loads((refiner_dir / "refiner.json").read_text())["gate_source"] == "the early-stopping cases"
    assert result.stdout.count("refine: fold 0: ") == 3, result.stdout
    assert args["gates"] == [gate["blends"]]
    prior = np.load(pred / case.replace(".nii.gz", ".npz"))["probabilities"]
    for channel, blend in gate["blends"].items():
        if blend == 0:
            assert np.array_equal(probs[int(channel)], prior[int(channel)]), "gate 0: the prior, exactly"
    assert (
        json.loads((tmp_path / "refined" / "postprocessing.json").read_text())["min_component_voxels"] == 10
    )


def test_a_refiner_variant_has_its_own_folder_and_refine_accepts_its_name(tmp_path):
    import argparse

    from nnunet_diffrefine.cli.refine import _refiner_folder_name
    from nnunet_diffrefine.errors import InputError
    from nnunet_diffrefine.refine.train import refiner_folder

    assert refiner_folder(tmp_path, "corrdiff") == tmp_path / "refiner_corrdiff"
    assert refiner_folder(tmp_path, "corrdiff", "realonly") == tmp_path / "refiner_corrdiff__realonly"
    with pytest.raises(InputError, match="letters, digits"):
        refiner_folder(tmp_path, "corrdiff", "../x")
    assert _refiner_folder_name("corrdiff__realonly") == "corrdiff__realonly"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown refiner 'nonsense'"):
        _refiner_folder_name("nonsense__realonly")


def test_a_2d_configuration_needs_a_3d_refiner_patch_and_says_which_flag_gives_it():
    from nnunet_diffrefine.errors import InputError
    from nnunet_diffrefine.refine.registry import refiner_class
    from nnunet_diffrefine.refine.train import resolve_patch

    cls = refiner_class("control")
    unset = cls.settings_class().replace(patch_size=None)  # as train-refiner without --patch-size
    with pytest.raises(InputError, match=r"\[32, 28\] is 2-D .*--patch-size Z,Y,X \(e.g. 32,32,28\)"):
        resolve_patch(cls, unset, (32, 28))
    given = unset.replace(patch_size=(16, 32, 32))
    assert resolve_patch(cls, given, (32, 28)).patch_size == (16, 32, 32)
    assert len(resolve_patch(cls, unset, (40, 48, 56)).patch_size) == 3


@pytest.mark.slow
def test_a_trainer_keeps_the_snapshots_it_is_told_to_and_never_the_last_epoch(tiny_nnunet, tmp_path):
    """``DIFFREFINE_KEEP_CHECKPOINTS``: nnU-Net's trainer also saves the weights after the named epochs
    (``current_epoch`` as nnU-Net counts it), never one for the last epoch (``checkpoint_final.pth`` is it);
    a snapshot's epoch and weights differ from the final checkpoint's, so the checkpoint-priors code
    (which skips a checkpoint saved at the final epoch) takes it."""
    import torch

    from nnunet_diffrefine.refine.checkpoint_priors import saved_epoch

    env = dict(tiny_nnunet, nnUNet_results=str(tmp_path / "results"), DIFFREFINE_KEEP_CHECKPOINTS="1,3")
    done = nnunet_train(env, "nnUNetTrainerCustomSchedule", "nnUNetPlansCPU", epochs=3)
    assert "DIFFREFINE_KEEP_CHECKPOINTS': (1, 3)" in done.stdout, "the schedule line names the snapshots"
    fold = next((tmp_path / "results").glob("*/nnUNetTrainerCustomSchedule__*/fold_0"))
    assert sorted(p.name for p in fold.glob("checkpoint_epoch_*.pth")) == ["checkpoint_epoch_1.pth"]
    assert saved_epoch(fold / "checkpoint_epoch_1.pth") == 1
    assert saved_epoch(fold / "checkpoint_final.pth") != 1
    snapshot = torch.load(fold / "checkpoint_epoch_1.pth", weights_only=False)["network_weights"]
    final = torch.load(fold / "checkpoint_final.pth", weights_only=False)["network_weights"]
    assert any(not torch.equal(snapshot[k], final[k]) for k in final), "two more epochs changed the weights"


@pytest.mark.slow
def test_checkpoint_priors_are_nnunets_own_validation_and_train_the_refiner(
    tiny_nnunet, tmp_path, monkeypatch
):
    """Priors of another checkpoint: predicted as nnU-Net's final validation predicts (checked against its
    own validation files with the final checkpoint), once, and added to the refiner's training data."""
    import torch

    from nnunet_diffrefine.refine.checkpoint_priors import predict_checkpoint_priors
    from nnunet_diffrefine.refine.registry import refiner_settings
    from nnunet_diffrefine.refine.run import load_model_context
    from nnunet_diffrefine.refine.train import train_refiner

    env = tiny_nnunet
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])
    shared = trained_model(env, "nnUNetTrainerCustomSchedule", "nnUNetPlansCPU")
    model = tmp_path / shared.name  # a copy: the shared model's folders stay as they are
    (model / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(shared / name, model)
    shutil.copy(shared / "fold_0" / "checkpoint_final.pth", model / "fold_0")
    final_epoch = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)["current_epoch"]
    best = torch.load(shared / "fold_0" / "checkpoint_best.pth", weights_only=False)
    best["current_epoch"] = final_epoch  # as when the last epoch was the best: the same weights
    torch.save(best, model / "fold_0" / "checkpoint_best.pth")
    shutil.copytree(shared / "fold_0" / "validation", model / "fold_0" / "validation")
    context = load_model_context(model)
    preprocessed = (
        Path(env["nnUNet_preprocessed"])
        / "Dataset980_TinyTrain"
        / context.configuration_manager.data_identifier
    )
    cases = sorted(p.name[: -len(".npz")] for p in (model / "fold_0" / "validation").glob("*.npz"))

    again = predict_checkpoint_priors(model / "fold_0", "checkpoint_final.pth", cases, preprocessed)
    assert again == model / "fold_0" / "validation_checkpoint_final"
    for case in cases:
        ours = np.load(again / f"{case}.npz")["probabilities"]
        theirs = np.load(model / "fold_0" / "validation" / f"{case}.npz")["probabilities"]
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    settings = refiner_settings("control", "tiny", checkpoint_priors="checkpoint_best.pth")
    logged: list[str] = []
    common = (preprocessed, context.plans_manager, context.configuration_manager, context.dataset_json)
    folder = train_refiner(model / "fold_0", "control", *common, settings=settings, log=logged.append)
    assert json.loads((folder / "refiner.json").read_text())["checkpoint_prior_sources"] == []
    assert any(f"final checkpoint's epoch ({final_epoch}): the same weights" in line for line in logged)
    assert not (model / "fold_0" / "validation_checkpoint_best").exists()

    best["current_epoch"] = final_epoch - 1  # an earlier epoch's weights: new priors
    torch.save(best, model / "fold_0" / "checkpoint_best.pth")
    logged.clear()
    folder = train_refiner(
        model / "fold_0", "control", *common, settings=settings, overwrite=True, log=logged.append
    )
    predicted = model / "fold_0" / "validation_checkpoint_best"
    assert sorted(p.name[: -len(".npz")] for p in predicted.glob("*.npz")) == cases
    config = json.loads((folder / "refiner.json").read_text())
    assert config["checkpoint_prior_sources"] == [str(predicted)]
    assert config["settings"]["checkpoint_priors"] == "checkpoint_best.pth"
    assert any(f"{len(cases)} more training priors from checkpoint_best.pth" in line for line in logged)
    written = {p: p.stat().st_mtime_ns for p in predicted.iterdir()}
    train_refiner(model / "fold_0", "control", *common, settings=settings, overwrite=True, log=lambda _: None)
    assert {p: p.stat().st_mtime_ns for p in predicted.iterdir()} == written, "predicted once, then read back"
