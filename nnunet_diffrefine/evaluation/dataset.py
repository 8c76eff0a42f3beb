"""What to evaluate, read from an nnU-Net dataset.json: its regions or labels and their display names,
every label value a file may hold, and the sub-challenge's BraTS 2023 lesion-wise parameters."""

from __future__ import annotations

import json
import os

import numpy as np

from nnunet_diffrefine.data.challenges import convention_of_dataset, region_display_names
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.lesionwise import BRATS_LESION_PARAMS, LesionWiseParams
from nnunet_diffrefine.evaluation.overlap import Region


def load_dataset_json(dataset_json: str | os.PathLike | dict) -> dict:
    """dataset.json as a dict (a dict is passed through); :class:`InputError` if unreadable."""
    if isinstance(dataset_json, dict):
        return dataset_json
    try:
        with open(dataset_json) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{dataset_json}: cannot read dataset.json ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{dataset_json}: dataset.json must hold a JSON object")
    return data


def dataset_regions(dataset_json: dict) -> tuple[list[Region], dict[Region, str], list[int]]:
    """What to evaluate, from dataset.json ``labels`` through nnU-Net's ``LabelManager``.

    Returns the foreground regions (region-based datasets, tuples) or labels (ints) in nnU-Net's order,
    a display name for each (the BraTS short name of a region, :func:`region_display_names`, else the
    dataset.json name) and every
    label value a file may hold.
    """
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = dataset_json.get("labels")
    if not isinstance(labels, dict):
        raise InputError("dataset.json has no 'labels' mapping")
    if "ignore" in labels:
        raise InputError("dataset.json declares an ignore label, which this evaluation does not support")
    try:
        manager = LabelManager(labels, dataset_json.get("regions_class_order"))
    except (AssertionError, RuntimeError, ValueError, TypeError) as e:
        raise InputError(f"dataset.json labels are not valid for nnU-Net: {e}") from None
    found = manager.foreground_regions if manager.has_regions else manager.foreground_labels
    regions: list[Region] = [int(r) if np.isscalar(r) else tuple(int(v) for v in r) for r in found]

    names: dict[Region, str] = {}
    display = region_display_names(dataset_json) if manager.has_regions else {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            key: Region = tuple(int(v) for v in value)
            names[key] = display.get(name, name)
        else:
            names[int(value)] = display.get(name, name)
    region_names = {r: names.get(r, str(r)) for r in regions}
    return regions, region_names, [int(v) for v in manager.all_labels]


def dataset_lesion_params(dataset_json: dict) -> LesionWiseParams:
    """The BraTS 2023 lesion-wise parameters of the convention dataset.json declares (``brats_convention``:
    dilation 3 / 50 mm³ for GLI, SSA, PED; 1 / 50 for MEN; 1 / 2 for MET), else the GLI ones."""
    convention = convention_of_dataset(dataset_json)
    if convention is None:
        return BRATS_LESION_PARAMS
    return LesionWiseParams(
        dilation=convention.lesion_dilation,
        connectivity=BRATS_LESION_PARAMS.connectivity,
        min_volume_mm3=convention.lesion_min_volume_mm3,
    )
