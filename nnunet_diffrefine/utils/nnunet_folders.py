"""Where nnU-Net keeps things: this project's trainer folder, trained models and preprocessed datasets.

Shared by the commands, the benchmark, the demo and the refiners, so that each resolves nnU-Net's
folders the same way and fails with the same clear message when something was not run first.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from nnunet_diffrefine.errors import InputError


def trainer_folder() -> Path:
    """The folder holding this project's trainer modules, for an editable or a wheel install."""
    spec = importlib.util.find_spec("nnunet_diffrefine.trainers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunet_diffrefine.trainers is not installed; reinstall nnunet-diffrefine")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def ensure_trainer_lookup() -> None:
    """Let nnU-Net find this project's trainers in this process (as ``nnunet-diffrefine env`` would)."""
    folder = str(trainer_folder())
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if folder not in current:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([folder, *current])


def _required_folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"{variable} is not set (see 'nnunet-diffrefine env')")
    return Path(value)


def dataset_name(dataset: str | int) -> str:
    """``DatasetXXX_NAME`` for an id (``970``) or a name, as nnU-Net resolves it."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except RuntimeError:  # nnU-Net's message spans several lines
        folders = ", ".join(
            f"{n}={os.environ.get(n) or '(unset)'}"
            for n in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
        )
        raise InputError(f"no dataset {dataset} in the nnU-Net folders ({folders})") from None


def model_folder_for(dataset: str | int, trainer: str, plans: str, configuration: str) -> Path:
    """``nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION`` (dataset by id or name)."""
    results = _required_folder("nnUNet_results")
    folder = results / dataset_name(dataset) / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist: train the model first")
    return folder


def find_preprocessed_dataset(dataset: str | int, preprocessed_root: str | os.PathLike | None = None) -> Path:
    """The ``DatasetXXX_NAME`` folder in nnUNet_preprocessed for an id (``970``) or a full name."""
    root = Path(preprocessed_root) if preprocessed_root else _required_folder("nnUNet_preprocessed")
    text = str(dataset)
    if text.isdigit():
        matches = sorted(root.glob(f"Dataset{int(text):03d}_*")) if root.is_dir() else []
        if not matches:
            raise InputError(
                f"no Dataset{int(text):03d}_* in {root}: run nnUNetv2_plan_and_preprocess -d {text} first"
            )
        return matches[0]
    folder = root / text
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist: run nnUNetv2_plan_and_preprocess first")
    return folder
