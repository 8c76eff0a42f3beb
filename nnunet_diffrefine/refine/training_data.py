"""Refiner training data: the base model's out-of-fold probabilities, in its preprocessed space.

nnU-Net's final validation of fold N (``nnUNetv2_train ... --npz``) writes ``fold_N/validation/CASE.npz``
for the cases fold N did not train on. Those, moved into the preprocessed grid with the case's
preprocessing properties and paired with the preprocessed image and label map, are the honest
training data for a refiner of fold N: never the base model's predictions on its own training cases.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import TrainingCase
from nnunet_diffrefine.refine.spaces import original_to_preprocessed


def targets_from_labels(labels: np.ndarray, label_manager) -> np.ndarray:
    """Label map ``(Z, Y, X)`` -> float32 targets ``(C, Z, Y, X)``: region masks, or one-hot over all labels."""
    labels = np.maximum(labels, 0)  # nnU-Net marks outside the non-zero mask with -1
    if label_manager.has_regions:
        groups = [r if isinstance(r, (list, tuple)) else (r,) for r in label_manager.foreground_regions]
        return np.stack([np.isin(labels, g) for g in groups]).astype(np.float32)
    return np.stack([labels == v for v in label_manager.all_labels]).astype(np.float32)


def out_of_fold_cases(
    validation_folder: str | os.PathLike,
    preprocessed_folder: str | os.PathLike,
    plans_manager,
    configuration_manager,
    label_manager,
) -> list[TrainingCase]:
    """One :class:`TrainingCase` per ``CASE.npz`` in ``validation_folder`` (preprocessed arrays from
    ``preprocessed_folder``, i.e. ``nnUNet_preprocessed/DatasetXXX/<data_identifier>``)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    validation_folder, preprocessed_folder = Path(validation_folder), Path(preprocessed_folder)
    cases = sorted(p.name[: -len(".npz")] for p in validation_folder.glob("*.npz"))
    if not cases:
        raise InputError(
            f"{validation_folder}: no out-of-fold probabilities (CASE.npz); train the base model with --npz"
        )
    dataset = infer_dataset_class(str(preprocessed_folder))(str(preprocessed_folder), cases)
    out = []
    for case in cases:
        data, seg, _, properties = dataset.load_case(case)
        image = np.asarray(data[:], dtype=np.float32)
        probabilities = np.load(validation_folder / f"{case}.npz")["probabilities"].astype(np.float32)
        prior = original_to_preprocessed(
            probabilities, properties, plans_manager, configuration_manager, image.shape[1:]
        )
        out.append(TrainingCase(case, image, prior, targets_from_labels(np.asarray(seg[0]), label_manager)))
    return out


def split_train_val(
    cases: list[TrainingCase], val_fraction: float = 0.2
) -> tuple[list[TrainingCase], list[TrainingCase]]:
    """Every ``round(1 / val_fraction)``-th case (at least every second) for early stopping, the rest for
    training; a single case does both."""
    if len(cases) < 2:
        return list(cases), list(cases)
    step = max(2, round(1 / val_fraction))
    val = cases[::step]
    train = [c for c in cases if c not in val]
    return train, val
