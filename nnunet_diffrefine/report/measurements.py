"""Deterministic measurements of a segmentation, the numbers every report is built from.

All values come from voxel counts, the voxel spacing and SimpleITK's index -> physical (LPS, mm)
mapping; nothing is estimated.

The sub-regions, their labels and the proportions come from the case's label convention
(:mod:`.vocabulary`); for BraTS 2023:

- Volumes (cm³) of NC (label 1), ED (2), ET (3), TC (1+3), WT (1+2+3): voxel count x voxel volume.
- Proportions ET/TC, NC/TC, ED/WT as fractions (``None`` when the denominator is 0).
- Lesions: 26-connected components of the tumor (WT; MEN-RT: the GTV), with their volumes (largest
  first). Below, WT stands for the tumor.
- Largest slices: for each plane of the patient's LPS axes (axial, coronal, sagittal; see
  :mod:`.orientation`) the slice with the largest WT area (the first on ties); on the axial one the
  RANO-style bidimensional diameters of the largest in-plane component (:mod:`.diameters`).
- Centroid of WT in physical LPS coordinates (mm). Side from physical x (LPS: +x is the patient's
  *left*), so any direction matrix is handled: ``left`` / ``right`` when the centroid lies more than
  :data:`MIDLINE_MARGIN_MM` from the midline, else ``midline``. The midline is the plane
  ``x = const`` through the centre of the brain mask's x-extent (brain mask = voxels that are non-zero
  in any image), or through the image centre when no image is given. The lesion *crosses the
  midline* when WT voxels lie more than the margin beyond it on both sides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_diffrefine.report.diameters import bidimensional
from nnunet_diffrefine.report.inputs import CaseInputs
from nnunet_diffrefine.report.orientation import PLANES, LPSView
from nnunet_diffrefine.report.vocabulary import Vocabulary, vocabulary

MIDLINE_MARGIN_MM = 2.0
"""WT must reach this far (mm) past the midline on both sides to count as crossing it; the centroid
must lie this far from it to get a side."""

SUBREGIONS: dict[str, tuple[int, ...]] = vocabulary().subregions
"""BraTS 2023: volume names -> labels, in report order (other conventions: :mod:`.vocabulary`)."""

PROPORTIONS: dict[str, tuple[str, str]] = vocabulary().proportions

NO_TUMOR = "no tumor segmented"

_DIGITS = 4  # decimals kept in measurements.json (cm³, mm, fractions)


def _r(value: float) -> float:
    return round(float(value), _DIGITS)


def _axis_name(axis: int) -> str:
    return "ZYX"[axis]


def physical_x(grid: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """Physical LPS x (mm) of voxels given as ``(N, 3)`` numpy ``(z, y, x)`` indices."""
    matrix = np.asarray(grid.GetDirection(), dtype=float).reshape(3, 3)
    sitk_index = indices_zyx[:, ::-1].astype(float) * np.asarray(grid.GetSpacing(), dtype=float)
    return grid.GetOrigin()[0] + sitk_index @ matrix[0]


def physical_point(grid: sitk.Image, index_zyx: np.ndarray) -> tuple[float, float, float]:
    """Physical LPS point (mm) of a continuous numpy ``(z, y, x)`` index."""
    return tuple(grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in index_zyx[::-1]]))


def midline_x(grid: sitk.Image, shape: tuple[int, ...], brain: np.ndarray | None) -> tuple[float, str]:
    """x (mm) of the midline plane and where it came from (``brain mask`` or ``image centre``)."""
    if brain is not None and brain.any():
        xs = physical_x(grid, np.argwhere(brain))
        return (float(xs.min()) + float(xs.max())) / 2.0, "brain mask"
    centre = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    return physical_point(grid, centre)[0], "image centre"


def brain_mask(images: dict[str, np.ndarray]) -> np.ndarray | None:
    """Voxels that are non-zero in any image (the images are skull-stripped), or ``None``."""
    mask = None
    for array in images.values():
        mask = array != 0 if mask is None else mask | (array != 0)
    return mask


def largest_slice(mask_lps: np.ndarray, plane: str) -> int | None:
    """View index of the ``plane`` slice with the most ``mask`` voxels, or ``None`` if empty."""
    axis = PLANES.index(plane)
    areas = mask_lps.sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(areas)) if areas.any() else None


def _slice(array_lps: np.ndarray, plane: str, index: int) -> np.ndarray:
    return np.take(array_lps, index, axis=PLANES.index(plane))


def volumes_cm3(
    segmentation: np.ndarray, spacing_zyx: tuple[float, float, float], words: Vocabulary | None = None
) -> dict[str, float]:
    """Volume in cm³ of each sub-region of ``words`` (default BraTS 2023: :data:`SUBREGIONS`)."""
    words = words or vocabulary()
    counts = np.bincount(segmentation.ravel().astype(np.int64), minlength=max(words.label_values) + 1)
    voxel_cm3 = float(np.prod(spacing_zyx)) / 1000.0
    return {
        name: _r(sum(int(counts[k]) for k in labels) * voxel_cm3) for name, labels in words.subregions.items()
    }


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else _r(2.0 * int((a & b).sum()) / total)


def measure(case: CaseInputs, margin_mm: float = MIDLINE_MARGIN_MM) -> dict[str, Any]:
    """Every measurement of ``case`` as a JSON-ready dict (the content of measurements.json), in the
    words of its label convention (``convention``, its key)."""
    seg, grid = case.segmentation, case.grid
    words = vocabulary(case.convention)
    spacing = case.spacing_zyx
    view = LPSView.of(grid.GetDirection(), grid.GetSpacing(), seg.shape)
    volumes = volumes_cm3(seg, spacing, words)
    wt = np.isin(seg, words.subregions[words.tumor])
    present = sorted(int(v) for v in np.unique(seg) if v > 0)
    out: dict[str, Any] = {
        "case_id": case.case_id,
        "convention": words.key,
        "finding": NO_TUMOR if not wt.any() else "tumor segmented",
        "labels_present": present,
        "shape_zyx": [int(s) for s in seg.shape],
        "spacing_zyx_mm": [_r(s) for s in spacing],
        "voxel_volume_mm3": _r(float(np.prod(spacing))),
        "images": [name for name in words.channels if name in case.images],
        "volumes_cm3": volumes,
        "proportions": {
            key: (_r(volumes[num] / volumes[den]) if volumes[den] > 0 else None)
            for key, (num, den) in words.proportions.items()
        },
    }
    components, count = ndimage.label(wt, structure=np.ones((3, 3, 3), dtype=bool))
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    sizes = np.sort(np.bincount(components.ravel())[1:])[::-1]
    out["lesions"] = {"count": int(count), "volumes_cm3": [_r(int(s) * voxel_cm3) for s in sizes]}

    wt_lps = view.apply(wt)
    slices: dict[str, Any] = {}
    for plane in PLANES:
        k = largest_slice(wt_lps, plane)
        if k is None:
            slices[plane] = None
            continue
        in_plane = [view.spacing[a] for a in range(3) if a != PLANES.index(plane)]
        slices[plane] = {
            "view_index": k,
            "file_axis": _axis_name(view.file_axis(plane)),
            "file_index": view.file_index(plane, k),
            "area_mm2": _r(_slice(wt_lps, plane, k).sum() * in_plane[0] * in_plane[1]),
        }
    if slices["axial"] is not None:
        axial_spacing = (view.spacing[1], view.spacing[2])
        dims = bidimensional(_slice(wt_lps, "axial", slices["axial"]["view_index"]), axial_spacing)
        slices["axial"]["long_diameter_mm"] = _r(dims.long_mm)
        slices["axial"]["perpendicular_diameter_mm"] = _r(dims.perpendicular_mm)
        slices["axial"]["product_mm2"] = _r(dims.long_mm * dims.perpendicular_mm)
    out["largest_slices"] = slices

    mid, source = midline_x(grid, seg.shape, brain_mask(case.images))
    out["midline"] = {"x_mm": _r(mid), "from": source, "margin_mm": _r(margin_mm)}
    if wt.any():
        voxels = np.argwhere(wt)
        centroid = physical_point(grid, voxels.mean(axis=0))
        xs = physical_x(grid, voxels)
        offset = centroid[0] - mid
        out["centroid_lps_mm"] = [_r(c) for c in centroid]
        out["centroid_offset_from_midline_mm"] = _r(abs(offset))
        out["side"] = "left" if offset > margin_mm else "right" if offset < -margin_mm else "midline"
        out["crosses_midline"] = bool(xs.min() < mid - margin_mm and xs.max() > mid + margin_mm)
    else:
        out["centroid_lps_mm"] = None
        out["centroid_offset_from_midline_mm"] = None
        out["side"] = None
        out["crosses_midline"] = False

    if case.reference is not None:
        ref = case.reference
        out["reference"] = {
            "volumes_cm3": volumes_cm3(ref, spacing, words),
            "dice": {
                name: _dice(np.isin(seg, labels), np.isin(ref, labels))
                for name, labels in words.subregions.items()
            },
        }
    return out
