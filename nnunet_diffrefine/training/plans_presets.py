"""Plans presets: copies of nnU-Net's plans whose architecture entry names one of our networks.

``write_plans_preset`` reads ``nnUNet_preprocessed/DatasetXXX/nnUNetPlans.json`` (what
``nnUNetv2_plan_and_preprocess`` wrote) and writes ``nnUNetPlans<Arch>[CPU].json`` next to it, for
``nnUNetv2_train ... -p nnUNetPlansMedNeXt`` with our trainers or with stock ``nnUNetTrainer``
(``nnUNetTrainerNoDeepSupervision`` for the networks without deep supervision). The preprocessed data
is shared: the configuration's ``data_identifier`` is kept.

The small-CPU preset (``cpu=True``) uses few features, patch sides of at most 64 voxels and a batch
of 2, so that a training iteration takes about a second on 2 cores; ``arch="nnunet"`` applies it to
stock nnU-Net's own network (``nnUNetPlansCPU``).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.training.architectures import ARCHITECTURES, round_up_patch
from nnunet_diffrefine.utils.io import OutputExistsError, write_json
from nnunet_diffrefine.workspace.folders import NnUNetFolders

CPU_MAX_PATCH = 64
CPU_BATCH_SIZE = 2
ARCH_CHOICES = (*ARCHITECTURES, "nnunet")


def preset_plans_name(arch: str, cpu: bool, source_plans: str = "nnUNetPlans") -> str:
    """``nnUNetPlansMedNeXt``, ``nnUNetPlansMedNeXtCPU``, ``nnUNetPlansCPU`` (stock network) ..."""
    suffix = "" if arch == "nnunet" else ARCHITECTURES[arch].plans_suffix
    return f"{source_plans}{suffix}{'CPU' if cpu else ''}"


def _cpu_plain_unet(arch: dict) -> dict:
    arch = copy.deepcopy(arch)
    kwargs = arch["arch_kwargs"]
    kwargs["features_per_stage"] = [min(8 * 2**i, 128) for i in range(len(kwargs["features_per_stage"]))]
    return arch


def preset_configuration(configuration: dict, arch: str, cpu: bool) -> dict:
    """One plans configuration rewritten for ``arch`` (and the small-CPU preset)."""
    cfg = copy.deepcopy(configuration)
    patch = list(cfg["patch_size"])
    if cpu:
        patch = [min(int(p), CPU_MAX_PATCH) for p in patch]
        cfg["batch_size"] = CPU_BATCH_SIZE
    if arch == "nnunet":
        if not cpu:
            raise InputError(
                "--arch nnunet only makes sense with --cpu (nnUNetPlans already is the stock plan)"
            )
        cfg["architecture"] = _cpu_plain_unet(cfg["architecture"])
        # stock nnU-Net needs the patch divisible by its total downsampling
        strides = cfg["architecture"]["arch_kwargs"]["strides"]
        total = [1, 1, 1]
        for s in strides:
            total = [t * int(si) for t, si in zip(total, s)]
        cfg["patch_size"] = [int(-(-p // t) * t) for p, t in zip(patch, total)]
        return cfg
    spec = ARCHITECTURES[arch]
    cfg["architecture"] = spec.architecture(cpu=cpu)
    cfg["patch_size"] = round_up_patch(patch, spec.patch_multiple)
    return cfg


def write_plans_preset(
    dataset: str | int,
    arch: str,
    cpu: bool = False,
    source_plans: str = "nnUNetPlans",
    configurations: tuple[str, ...] = ("3d_fullres",),
    overwrite: bool = False,
    *,
    preprocessed_root: str | os.PathLike,
) -> Path:
    """Write the preset plans file into ``preprocessed_root/DatasetXXX_NAME`` (nnUNet_preprocessed) and
    return its path (see the module docstring)."""
    if arch not in ARCH_CHOICES:
        raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCH_CHOICES)}")
    folder = NnUNetFolders(preprocessed=preprocessed_root).preprocessed_dataset(dataset)
    source = folder / f"{source_plans}.json"
    if not source.is_file():
        raise InputError(f"{source} does not exist: run nnUNetv2_plan_and_preprocess first")
    plans = json.loads(source.read_text())
    name = preset_plans_name(arch, cpu, source_plans)
    target = folder / f"{name}.json"
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists; refusing to overwrite it (pass --overwrite)")
    for configuration in configurations:
        if configuration not in plans["configurations"]:
            raise InputError(
                f"{source} has no configuration {configuration!r} (it has {', '.join(plans['configurations'])})"
            )
        if "inherits_from" in plans["configurations"][configuration]:
            raise InputError(
                f"configuration {configuration!r} inherits from another; choose the parent configuration"
            )
        plans["configurations"][configuration] = preset_configuration(
            plans["configurations"][configuration], arch, cpu
        )
    plans["plans_name"] = name
    write_json(plans, target, overwrite=True)
    return target
