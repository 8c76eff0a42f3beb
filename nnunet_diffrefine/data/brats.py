"""BraTS conventions shared by the converter, the phantoms, evaluation and reports.

Labels (BraTS 2023 numbering, used everywhere in this project):

==== ===================================== =========
 id   meaning                               short
==== ===================================== =========
 0    background / healthy tissue           BG
 1    necrotic or non-enhancing tumor core  NC
 2    peritumoral edema (invaded tissue)    ED
 3    enhancing tumor                       ET
==== ===================================== =========

Regions (what BraTS scores): ET = {3}, TC = {1, 3}, WT = {1, 2, 3}.

Channels, in nnU-Net's ``_0000`` .. ``_0003`` order: T1n (native T1), T1c (contrast-enhanced T1),
T2w, T2-FLAIR.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
"""BraTS 2023 file suffixes, in nnU-Net channel order."""

CHANNEL_NAMES: dict[str, str] = {"0": "T1n", "1": "T1c", "2": "T2w", "3": "T2F"}

LABEL_NAMES: dict[int, str] = {0: "background", 1: "NC", 2: "ED", 3: "ET"}
KNOWN_LABELS: frozenset[int] = frozenset(LABEL_NAMES)

REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
"""Region name -> labels it contains, in the order of the region channels nnU-Net predicts."""

REGIONS_CLASS_ORDER: list[int] = [2, 1, 3]
"""Label written for each region channel when nnU-Net turns region predictions into a label map.

Channels are painted in order: WT paints 2 (edema), then TC overwrites with 1, then ET with 3, which
reproduces the BraTS label map exactly when the regions are nested."""

FILE_ENDING = ".nii.gz"


def region_dataset_json(
    num_training: int,
    name: str,
    description: str = "",
    reference: str = "",
    licence: str = "",
    file_ending: str = FILE_ENDING,
) -> dict:
    """The nnU-Net ``dataset.json`` for region-based (sigmoid WT/TC/ET) BraTS training."""
    return {
        "name": name,
        "description": description,
        "reference": reference,
        "licence": licence,
        "release": "1.0",
        "channel_names": dict(CHANNEL_NAMES),
        "labels": {
            "background": 0,
            "whole_tumor": list(REGIONS["WT"]),
            "tumor_core": list(REGIONS["TC"]),
            "enhancing_tumor": list(REGIONS["ET"]),
        },
        "regions_class_order": list(REGIONS_CLASS_ORDER),
        "numTraining": int(num_training),
        "file_ending": file_ending,
    }


def label_dataset_json(num_training: int, name: str, **fields: str) -> dict:
    """The nnU-Net ``dataset.json`` for label-based (softmax over background, NC, ED, ET) training.

    ``fields``: those of :func:`region_dataset_json` (description, reference, licence, file_ending).
    Same as :func:`region_dataset_json` except ``labels`` (one entry per BraTS label) and no
    ``regions_class_order``; evaluation then scores each label instead of the regions.
    """
    out = region_dataset_json(num_training, name, **fields)
    out["labels"] = {LABEL_NAMES[i]: i for i in sorted(LABEL_NAMES)}
    del out["regions_class_order"]
    return out


def brats_dataset_json(num_training: int, name: str, label_based: bool = False, **fields: str) -> dict:
    """:func:`label_dataset_json` if ``label_based`` else :func:`region_dataset_json`."""
    make = label_dataset_json if label_based else region_dataset_json
    return make(num_training, name, **fields)


_DATASET_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_NAME`` as nnU-Net names raw datasets (three digits, no ``__``)."""
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"dataset id must be between 1 and 999, got {dataset_id}")
    if not _DATASET_NAME.match(name) or "__" in name:
        raise ValueError(f"dataset name {name!r} may only contain letters, digits, '_' and '-' (no '__')")
    return f"Dataset{int(dataset_id):03d}_{name}"


def existing_dataset_with_id(raw_root: str | os.PathLike, dataset_id: int) -> Path | None:
    """The folder in ``raw_root`` that already uses ``dataset_id``, if any (nnU-Net needs unique ids)."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        return None
    prefix = f"Dataset{int(dataset_id):03d}_"
    for p in sorted(raw_root.iterdir()):
        if p.is_dir() and p.name.startswith(prefix):
            return p
    return None
