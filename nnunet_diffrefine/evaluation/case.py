"""Every metric of one case: a reference and a prediction label map, per label or region.

Imports only numpy, scipy, SimpleITK and cc3d so that worker processes start quickly (nnU-Net,
torch and MONAI stay in the parent process).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.conventions import (
    BRATS_HD95_PENALTY_MM,
    EmptyConvention,
    check_empty_convention,
    check_penalty,
)
from nnunet_diffrefine.evaluation.grid import as_spacing, bounding_box
from nnunet_diffrefine.evaluation.lesionwise import BRATS_LESION_PARAMS, LesionWiseParams, lesion_wise_scores
from nnunet_diffrefine.evaluation.overlap import Region, overlap_from_counts, region_mask, volume_cm3
from nnunet_diffrefine.evaluation.surface import hd95, normalized_surface_dice
from nnunet_diffrefine.utils.io import read_image_3d

METRIC_NAMES: tuple[str, ...] = (
    "Dice",
    "IoU",
    "HD95",
    "NSD",
    "Sensitivity",
    "Precision",
    "TP",
    "FP",
    "FN",
    "TN",
    "n_pred",
    "n_ref",
    "Volume_pred_cm3",
    "Volume_ref_cm3",
    "LesionWise_Dice",
    "LesionWise_HD95",
    "Num_lesions",
    "Num_FP_lesions",
)
"""Metrics of each case and region: nnU-Net's names first, then ours (HD95 and volumes in mm / cm³; NSD:
normalized surface Dice at the official tolerance, the smallest voxel spacing)."""


@dataclass(frozen=True)
class CaseMetric:
    """A per-case metric beyond :data:`METRIC_NAMES`: ``compute(pred, ref, spacing)`` of two boolean
    ``(Z, Y, X)`` masks of one region (cropped to the box around every region, so voxel counts hold)
    and the ``(z, y, x)`` spacing in mm gives one number. With a
    ``title`` the benchmark table shows it (averaged over the regions, ``digits`` decimals). ``compute``
    must be a module-level function so that worker processes can run it."""

    name: str
    compute: Callable[[np.ndarray, np.ndarray, tuple[float, float, float]], float]
    title: str | None = None
    digits: int = 3


GEOMETRY_TOLERANCE = 1e-4
"""Relative on the spacing, absolute on the direction cosines, times the largest voxel size on the origin."""


def evaluate_arrays(
    pred_seg: np.ndarray,
    ref_seg: np.ndarray,
    spacing: Sequence[float],
    regions: Sequence[Region],
    empty_convention: EmptyConvention = "brats",
    lesion_params: LesionWiseParams = BRATS_LESION_PARAMS,
    hd95_penalty: float = BRATS_HD95_PENALTY_MM,
    extra_metrics: Sequence[CaseMetric] = (),
) -> dict[Region, dict[str, float | int]]:
    """Every metric (:data:`METRIC_NAMES`, then ``extra_metrics``) of two ``(Z, Y, X)`` label maps, per
    label or region.

    ``regions``: labels (``int``) or regions (tuples of labels), as nnU-Net lists them; ``spacing``
    ``(z, y, x)`` in mm. All work happens on the bounding box of the voxels that belong to any region
    (plus a margin for the lesion dilation); TN counts the whole image.
    """
    check_empty_convention(empty_convention)
    hd95_penalty = check_penalty(hd95_penalty)
    spacing = as_spacing(spacing)
    pred_seg, ref_seg = np.asarray(pred_seg), np.asarray(ref_seg)
    if pred_seg.ndim != 3 or pred_seg.shape != ref_seg.shape:
        raise InputError(
            f"label maps must be 3D arrays of the same shape, got {pred_seg.shape} and {ref_seg.shape}"
        )
    all_labels = sorted({int(v) for r in regions for v in ((r,) if np.isscalar(r) else r)})
    foreground = region_mask(ref_seg, tuple(all_labels)) | region_mask(pred_seg, tuple(all_labels))
    total = int(foreground.size)
    box = bounding_box(foreground, margin=int(lesion_params.dilation) + 1)
    if box is None:  # no region anywhere: a 1-voxel background crop scores the same
        pred_seg = ref_seg = np.zeros((1, 1, 1), np.uint8)
    else:
        pred_seg, ref_seg = pred_seg[box], ref_seg[box]

    results: dict[Region, dict[str, float | int]] = {}
    for region in regions:
        pred, ref = region_mask(pred_seg, region), region_mask(ref_seg, region)
        tp = int(np.count_nonzero(pred & ref))
        n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
        metrics = overlap_from_counts(
            tp, n_pred - tp, n_ref - tp, total - n_pred - n_ref + tp, empty_convention
        )
        distance = hd95(pred, ref, spacing, empty_convention, hd95_penalty)
        lesions = lesion_wise_scores(
            pred, ref, spacing, lesion_params, empty_convention, hd95_penalty, known_hd95=distance
        )
        metrics.update(
            HD95=distance,
            NSD=normalized_surface_dice(pred, ref, spacing, empty_convention=empty_convention),
            Volume_pred_cm3=volume_cm3(n_pred, spacing),
            Volume_ref_cm3=volume_cm3(n_ref, spacing),
            LesionWise_Dice=lesions.dice,
            LesionWise_HD95=lesions.hd95,
            Num_lesions=lesions.num_lesions,
            Num_FP_lesions=lesions.num_fp,
        )
        results[region] = {name: metrics[name] for name in METRIC_NAMES}
        results[region].update({m.name: float(m.compute(pred, ref, spacing)) for m in extra_metrics})
    return results


@dataclass(frozen=True)
class Geometry:
    """Image grid in SimpleITK's ``(x, y, z)`` order: size (voxels), spacing (mm), origin (mm), direction."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def mismatch(self, other: Geometry, tolerance: float = GEOMETRY_TOLERANCE) -> str | None:
        """Name of the first property in which ``other`` differs from this grid, or ``None``."""
        if self.size != other.size:
            return "size"
        spacing, other_spacing = np.array(self.spacing), np.array(other.spacing)
        if np.any(np.abs(other_spacing - spacing) > tolerance * np.abs(spacing)):
            return "spacing"
        if np.linalg.norm(np.subtract(other.origin, self.origin)) > tolerance * float(np.max(spacing)):
            return "origin"
        if np.any(np.abs(np.subtract(other.direction, self.direction)) > tolerance):
            return "direction"
        return None


def label_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a label map (fast for the usual small non-negative integers)."""
    if array.dtype.kind == "f" or array.dtype.kind == "b":
        as_int = array.astype(np.int64)
        if not np.array_equal(as_int, array):
            return np.unique(array)
        array = as_int
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = int(array.min()), int(array.max())
    if high - low < (1 << 20):
        shifted = array.ravel() if low == 0 else array.ravel().astype(np.int64) - low
        return np.flatnonzero(np.bincount(shifted)) + low
    return np.unique(array)


def read_segmentation(
    path: str | os.PathLike, known_labels: Iterable[int] | None = None
) -> tuple[np.ndarray, Geometry]:
    """A 3D label map as a ``(Z, Y, X)`` integer array and its grid; :class:`InputError` if it cannot be
    read, is not 3D or holds values outside ``known_labels``."""
    image = read_image_3d(path, "label map")
    array = sitk.GetArrayFromImage(image)
    values = label_values(array)
    if known_labels is not None:
        unknown = sorted(set(values.tolist()) - {int(v) for v in known_labels})
        if unknown:
            raise InputError(
                f"{path}: unknown label values {unknown}; dataset.json allows {sorted(int(v) for v in known_labels)}"
            )
    elif values.dtype.kind == "f":
        raise InputError(f"{path}: label values must be whole numbers, got {values[:10].tolist()}")
    if array.dtype.kind == "f":
        array = array.astype(np.int64)
    return array, Geometry.of(image)


def evaluate_case(
    reference_file: str | os.PathLike,
    prediction_file: str | os.PathLike,
    regions: Sequence[Region],
    known_labels: Iterable[int] | None = None,
    empty_convention: EmptyConvention = "brats",
    lesion_params: LesionWiseParams = BRATS_LESION_PARAMS,
    hd95_penalty: float = BRATS_HD95_PENALTY_MM,
    missing_ok: bool = False,
    extra_metrics: Sequence[CaseMetric] = (),
) -> dict:
    """Metrics of one case in nnU-Net's per-case layout.

    Returns ``{"reference_file", "prediction_file", "metrics": {region: {metric: value}}}``, ``region``
    as in ``regions`` (labels or tuples). The two files must share size, spacing, origin and direction
    (:data:`GEOMETRY_TOLERANCE`) and hold only ``known_labels``, else :class:`InputError` naming the case.
    With ``missing_ok`` a missing prediction file is scored as an empty prediction.
    """
    reference_file, prediction_file = str(reference_file), str(prediction_file)
    case = Path(reference_file).name
    ref_seg, ref_geometry = read_segmentation(reference_file, known_labels)
    if missing_ok and not Path(prediction_file).exists():
        pred_seg = np.zeros_like(ref_seg)
    else:
        if not Path(prediction_file).is_file():
            raise InputError(f"case {case}: prediction {prediction_file} does not exist")
        pred_seg, pred_geometry = read_segmentation(prediction_file, known_labels)
        what = ref_geometry.mismatch(pred_geometry)
        if what is not None:
            mine, theirs = getattr(pred_geometry, what), getattr(ref_geometry, what)
            raise InputError(
                f"case {case}: the prediction {prediction_file} and the reference {reference_file} differ in "
                f"{what}: {_fmt(mine)} vs {_fmt(theirs)}"
            )
    spacing_zyx = tuple(reversed(ref_geometry.spacing))
    metrics = evaluate_arrays(
        pred_seg, ref_seg, spacing_zyx, regions, empty_convention, lesion_params, hd95_penalty, extra_metrics
    )
    return {"reference_file": reference_file, "prediction_file": prediction_file, "metrics": metrics}


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"
