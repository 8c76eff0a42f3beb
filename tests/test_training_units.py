"""Losses, schedules, plans presets and the trainers' plan adjustments (no training)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.losses.segmentation import LabelDiceCELoss, RegionDiceBCELoss, SoftDiceLoss
from nnunet_diffrefine.training.architectures import ARCHITECTURES, round_up_patch
from nnunet_diffrefine.training.schedule import WarmupCosineLRScheduler, schedule_overrides


def _dsc_pp_brute(prob: np.ndarray, target: np.ndarray, eps: float = 1e-5) -> float:
    """1 - mean over (batch, channel) of (2 sum p y + eps) / (sum p^2 + sum y^2 + eps), written out."""
    scores = []
    for b in range(prob.shape[0]):
        for c in range(prob.shape[1]):
            p, y = prob[b, c].ravel(), target[b, c].ravel()
            num = 2 * sum(float(pi * yi) for pi, yi in zip(p, y)) + eps
            den = sum(float(pi * pi) for pi in p) + sum(float(yi * yi) for yi in y) + eps
            scores.append(num / den)
    return 1 - float(np.mean(scores))


def test_region_loss_is_dsc_plus_plus_plus_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    target = (torch.rand(2, 3, 4, 5, 6, generator=g) > 0.6).double()
    prob = torch.sigmoid(logits).numpy()
    y = target.numpy()
    bce = -np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob))
    expected = _dsc_pp_brute(prob, y) + bce
    assert RegionDiceBCELoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_label_loss_is_foreground_dsc_plus_plus_plus_ce():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, 4, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 1, 3, 4, 5), generator=g)
    prob = torch.softmax(logits, 1).numpy()
    onehot = np.stack([(labels[:, 0].numpy() == k) for k in range(4)], 1).astype(float)
    ce = -np.mean(np.log(np.take_along_axis(prob, labels.numpy(), 1)))
    expected = _dsc_pp_brute(prob[:, 1:], onehot[:, 1:]) + ce
    assert LabelDiceCELoss()(logits, labels.double()).item() == pytest.approx(expected, rel=1e-6)


def test_soft_dice_matches_seed_000_equation_2():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 4, 3, 3, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (1, 1, 3, 3, 3), generator=g)
    prob = torch.softmax(logits, 1).numpy()
    onehot = np.stack([(labels[:, 0].numpy() == k) for k in range(4)], 1).astype(float)
    assert SoftDiceLoss(regions=False)(logits, labels.double()).item() == pytest.approx(
        _dsc_pp_brute(prob, onehot), rel=1e-6
    )


def test_perfect_prediction_has_near_zero_region_dice():
    target = torch.zeros(1, 3, 8, 8, 8)
    target[:, :, 2:6, 2:6, 2:6] = 1
    logits = (target * 2 - 1) * 30
    assert SoftDiceLoss(regions=True)(logits, target).item() < 1e-6


def test_warmup_then_cosine():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLRScheduler(opt, initial_lr=1e-4, max_steps=25, warmup_steps=5)
    lrs = []
    for epoch in range(25):
        sched.step(epoch)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:5] == pytest.approx([1e-4 * (i + 1) / 6 for i in range(5)])
    assert lrs[5] == pytest.approx(1e-4)
    assert lrs[15] == pytest.approx(0.5e-4 * (1 + math.cos(math.pi * 10 / 20)))
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))


def test_schedule_variables_are_parsed_and_checked():
    env = {"DIFFREFINE_NUM_EPOCHS": "3", "DIFFREFINE_ITERS_PER_EPOCH": "7", "DIFFREFINE_WARMUP_EPOCHS": "0"}
    assert schedule_overrides(env) == {"num_epochs": 3, "num_iterations_per_epoch": 7, "warmup_epochs": 0}
    with pytest.raises(InputError, match="DIFFREFINE_NUM_EPOCHS"):
        schedule_overrides({"DIFFREFINE_NUM_EPOCHS": "many"})
    with pytest.raises(InputError, match=">= 1"):
        schedule_overrides({"DIFFREFINE_ITERS_PER_EPOCH": "0"})
    assert schedule_overrides({"DIFFREFINE_LR": "1e-3", "DIFFREFINE_SAVE_EVERY": "5"}) == {
        "initial_lr": 1e-3,
        "save_every": 5,
    }
    for bad in ("0", "-1e-3", "fast", "inf"):
        with pytest.raises(InputError, match="DIFFREFINE_LR"):
            schedule_overrides({"DIFFREFINE_LR": bad})


def test_the_cpu_schedule_gives_every_trainer_the_same_length_and_its_own_optimiser_rate():
    from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

    schedule = CPUSchedule()
    stock, mednext = (
        schedule.environment("nnUNetTrainerCustomSchedule"),
        schedule.environment("MedNeXtTrainer"),
    )
    assert {k: v for k, v in stock.items() if k != "DIFFREFINE_LR"} == {
        k: v for k, v in mednext.items() if k != "DIFFREFINE_LR"
    }
    assert float(stock["DIFFREFINE_LR"]) == 1e-1 and float(mednext["DIFFREFINE_LR"]) == 1e-3
    assert schedule_overrides(mednext)["initial_lr"] == 1e-3


def test_patch_rounding():
    assert round_up_patch([40, 48, 33], 32) == [64, 64, 64]
    assert round_up_patch([40, 48, 33], 16) == [48, 48, 48]
    assert round_up_patch([24, 32, 20], 32) == [32, 64, 32]  # the deepest level keeps two voxels


# ----------------------------------------------------------------------------- plans and trainers


def _plans(patch=(40, 48, 40)) -> dict:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # noqa: F401 - plans format

    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 4,
            "features_per_stage": [32, 64, 128, 256],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 4,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [2, 2, 2, 2],
            "n_conv_per_stage_decoder": [2, 2, 2],
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return {
        "dataset_name": "Dataset990_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [6.0, 6.0, 6.0],
        "original_median_shape_after_transp": [26, 29, 23],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": list(patch),
                "median_image_size_in_voxels": [26, 29, 23],
                "spacing": [6.0, 6.0, 6.0],
                "normalization_schemes": ["ZScoreNormalization"] * 4,
                "use_mask_for_norm": [True] * 4,
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {
                    "is_seg": False,
                    "order": 3,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_seg_kwargs": {
                    "is_seg": True,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "architecture": arch,
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {},
    }


def test_plans_preset_writes_our_architecture_and_rounds_the_patch(tmp_path):
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    folder = tmp_path / "Dataset990_Tiny"
    folder.mkdir()
    (folder / "nnUNetPlans.json").write_text(json.dumps(_plans()))
    path = write_plans_preset(990, "swinunetr", cpu=True, preprocessed_root=tmp_path)
    assert path.name == "nnUNetPlansSwinUNETRCPU.json"
    plans = json.loads(path.read_text())
    cfg = plans["configurations"]["3d_fullres"]
    assert plans["plans_name"] == "nnUNetPlansSwinUNETRCPU"
    assert cfg["patch_size"] == [64, 64, 64] and cfg["batch_size"] == 2
    assert cfg["architecture"]["network_class_name"].endswith("swinunetr_from_plans")
    assert cfg["architecture"]["arch_kwargs"]["feature_size"] == 12
    assert cfg["data_identifier"] == "nnUNetPlans_3d_fullres"
    stock = json.loads(write_plans_preset(990, "nnunet", cpu=True, preprocessed_root=tmp_path).read_text())
    assert stock["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] == [
        8,
        16,
        32,
        64,
    ]
    assert stock["configurations"]["3d_fullres"]["patch_size"] == [40, 48, 40]
    with pytest.raises(FileExistsError):
        write_plans_preset(990, "swinunetr", cpu=True, preprocessed_root=tmp_path)
    with pytest.raises(InputError, match="plan_and_preprocess"):
        write_plans_preset(991, "mednext", preprocessed_root=tmp_path)


@pytest.mark.parametrize("key,multiple", [(k, s.patch_multiple) for k, s in ARCHITECTURES.items()])
def test_trainer_writes_its_network_and_patch_into_the_plans_it_holds(key, multiple, tmp_path, monkeypatch):
    import importlib
    import sys

    from nnunet_diffrefine.workspace.folders import trainer_folder

    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.syspath_prepend(str(trainer_folder()))
    module = importlib.import_module("diffrefine_trainers")
    name = {
        "mednext": "MedNeXtTrainer",
        "swinunetr": "SwinUNETRTrainer",
        "resunet": "ResUNetTrainer",
        "segresnet": "SegResNetTrainer",
    }[key]
    plans = _plans(patch=(40, 48, 36))
    plans["continue_training"] = False
    dataset_json = {
        "labels": {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [1, 3], "enhancing_tumor": [3]},
        "regions_class_order": [2, 1, 3],
        "channel_names": {str(i): f"c{i}" for i in range(4)},
        "file_ending": ".nii.gz",
        "numTraining": 5,
    }
    trainer = getattr(module, name)(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    held = trainer.plans_manager.plans["configurations"]["3d_fullres"]
    assert held["architecture"]["network_class_name"] == ARCHITECTURES[key].class_name
    assert held["patch_size"] == round_up_patch([40, 48, 36], multiple)
    assert list(trainer.configuration_manager.patch_size) == held["patch_size"]
    assert trainer.enable_deep_supervision == ARCHITECTURES[key].deep_supervision
    assert (trainer.initial_lr, trainer.weight_decay) == (1e-4, 1e-5)
    network = trainer.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, 4, 3, trainer.enable_deep_supervision
    )
    network.eval()
    with torch.no_grad():
        out = network(torch.zeros(1, 4, *held["patch_size"]))
    out = out[0] if isinstance(out, (list, tuple)) else out
    assert tuple(out.shape) == (1, 3, *held["patch_size"])
    sys.modules.pop("diffrefine_trainers", None)


def test_trainers_are_found_the_way_nnunet_looks_them_up(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_diffrefine.workspace.folders import trainer_folder

    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_folder()))
    for name in (
        "MedNeXtTrainer",
        "SwinUNETRTrainer",
        "ResUNetTrainer",
        "SegResNetTrainer",
        "nnUNetTrainerCustomSchedule",
    ):
        cls = recursive_find_trainer_class_by_name(name)
        assert cls.__name__ == name


def test_every_two_stage_trainer_names_a_registered_refiner_on_its_base_trainer(monkeypatch):
    """The thin two-stage classes (base model, then the refiner on its out-of-fold probabilities): nnU-Net
    finds each, and each trains the refiner its name says after the base trainer its name says (the
    end-to-end tests run MedNeXt + CorrDiff, Swin-UNETR + MedSegDiff and Swin-UNETR + DDPM)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_diffrefine.refine.registry import refiner_class
    from nnunet_diffrefine.training.refiner_stage import RefinerStageMixin
    from nnunet_diffrefine.workspace.folders import trainer_folder

    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_folder()))  # (nnU-Net imports the module anew)
    expected = {
        "MedNeXtCorrDiffTrainer": ("MedNeXtTrainer", "corrdiff"),
        "SwinUNETRDDPMTrainer": ("SwinUNETRTrainer", "ddpm"),
        "SwinUNETRDDPMScratchTrainer": ("SwinUNETRTrainer", "ddpm_scratch"),
        "SwinUNETRMedSegDiffTrainer": ("SwinUNETRTrainer", "medsegdiff"),
        "SwinUNETRMedSegDiffScratchTrainer": ("SwinUNETRTrainer", "medsegdiff_scratch"),
    }
    for name, (base, refiner) in expected.items():
        cls = recursive_find_trainer_class_by_name(name)
        assert RefinerStageMixin.__name__ in [c.__name__ for c in cls.__mro__], name
        assert cls.refiner_name == refiner and base in [c.__name__ for c in cls.__mro__[1:]], name
        assert refiner_class(refiner) is not None


def test_the_gradient_clip_hook_limits_every_optimizer_step_to_the_global_norm():
    """The trainers' clip at 1.0 runs as an optimizer step pre-hook, so nnU-Net's train_step is not copied:
    a step with huge gradients moves the parameters by exactly lr x 1.0 in global norm."""
    import torch

    from nnunet_diffrefine.training.base import clip_gradients_before_step

    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    optimizer = torch.optim.SGD(params, lr=0.5)
    handle = clip_gradients_before_step(optimizer, 1.0)
    params[0].grad = torch.tensor([30.0, 40.0, 0.0])
    params[1].grad = torch.zeros(2, 2)
    optimizer.step()
    moved = torch.cat([p.detach().flatten() for p in params])
    assert torch.isclose(moved.norm(), torch.tensor(0.5), atol=1e-6)  # lr x clipped norm 1.0
    assert torch.allclose(moved[:3], torch.tensor([-0.3, -0.4, 0.0]), atol=1e-6)  # same direction
    handle.remove()
    params[0].grad = torch.tensor([0.3, 0.4, 0.0])  # below the clip: untouched either way
    before = params[0].detach().clone()
    optimizer.step()
    assert torch.allclose(params[0].detach(), before - 0.5 * torch.tensor([0.3, 0.4, 0.0]))
