"""Voxel-overlap metrics: TP/FP/FN/TN counts, Dice, IoU, sensitivity, precision, volumes (cm³).

Names and the count definitions follow nnU-Net's ``compute_metrics`` (``TP``, ``FP``, ``FN``, ``TN``,
``n_pred = TP + FP``, ``n_ref = TP + FN``, ``Dice = 2TP / (2TP + FP + FN)``, ``IoU = TP / (TP + FP + FN)``);
``Sensitivity = TP / (TP + FN)``, ``Precision = TP / (TP + FP)``. Undefined ratios (0/0) follow the
empty-mask convention (:mod:`nnunet_diffrefine.evaluation.conventions`): ``"brats"``: 1 when both
masks are empty, else 0; ``"nan"``: NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_diffrefine.evaluation.conventions import EmptyConvention, check_empty_convention
from nnunet_diffrefine.evaluation.grid import as_mask_pair, as_spacing

Region = int | tuple[int, ...]


def region_mask(segmentation: np.ndarray, region: Region) -> np.ndarray:
    """Boolean mask of a label (``int``) or a region (tuple of labels) in a label map.

    Same result as nnU-Net's ``region_or_label_to_mask`` (which this module does not import, to keep
    worker processes light).
    """
    labels = [region] if np.isscalar(region) else list(region)
    return np.isin(segmentation, np.asarray(labels, dtype=np.int64))


def _ratio(numerator: int, denominator: int, both_empty: bool, convention: EmptyConvention) -> float:
    if denominator > 0:
        return numerator / denominator
    if convention == "nan":
        return float("nan")
    return 1.0 if both_empty else 0.0


def overlap_from_counts(
    tp: int, fp: int, fn: int, tn: int, empty_convention: EmptyConvention = "brats"
) -> dict[str, float | int]:
    """Every overlap metric from the four voxel counts (see the module docstring for empty masks)."""
    check_empty_convention(empty_convention)
    tp, fp, fn, tn = int(tp), int(fp), int(fn), int(tn)
    both_empty = tp + fp + fn == 0
    return {
        "Dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty, empty_convention),
        "IoU": _ratio(tp, tp + fp + fn, both_empty, empty_convention),
        "Sensitivity": _ratio(tp, tp + fn, both_empty, empty_convention),
        "Precision": _ratio(tp, tp + fp, both_empty, empty_convention),
        "TP": tp,
        "FP": fp,
        "FN": fn,
        "TN": tn,
        "n_pred": tp + fp,
        "n_ref": tp + fn,
    }


def overlap_metrics(
    pred: np.ndarray, ref: np.ndarray, empty_convention: EmptyConvention = "brats"
) -> dict[str, float | int]:
    """Dice, IoU, Sensitivity, Precision, TP, FP, FN, TN, n_pred, n_ref of two boolean masks."""
    pred, ref = as_mask_pair(pred, ref)
    tp = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    fp, fn = n_pred - tp, n_ref - tp
    return overlap_from_counts(tp, fp, fn, pred.size - tp - fp - fn, empty_convention)


def volume_cm3(num_voxels: int, spacing: Sequence[float]) -> float:
    """Volume in cm³ of ``num_voxels`` voxels of ``(z, y, x)`` spacing in mm."""
    return float(num_voxels) * float(np.prod(as_spacing(spacing))) / 1000.0
