"""HD95 exactly as the BraTS scorer computes it: DeepMind's surface-distance definition.

The BraTS 2023 scorer (github.com/rachitsaluja/BraTS-2023-Metrics) uses DeepMind's surface-distance
package (github.com/deepmind/surface-distance, Nikolov et al. 2021) unchanged. The definition,
for two boolean masks on a ``(Z, Y, X)`` grid with voxel spacing ``(z, y, x)`` in mm:

1. **Surface elements (surfels).** Every corner of the voxel grid -- the points half a voxel off the
   voxel centres, the outermost corners outside the image included (the masks are zero outside) --
   gets the 8-bit code of the 2 x 2 x 2 voxels around it: the voxel at offset ``(a, b, c)``,
   ``a, b, c`` in {0, 1} from the corner's lower neighbour, sets bit ``7 - (4a + 2b + c)`` (DeepMind's
   kernel ``[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]``). A corner whose code is neither 0 (all
   outside) nor 255 (all inside) is a surfel.
2. **Surfel area (mm²).** The marching-cubes surface of the code's 2 x 2 x 2 cube, vertices on the
   edge midpoints: DeepMind's table gives, per code, up to four area normals ``n`` in voxel units,
   and the area in mm² is the sum of ``|(n_z s_y s_x, n_y s_z s_x, n_x s_z s_y)|``. The normals
   table is MONAI's copy of DeepMind's (``monai.metrics.utils``); the areas are computed from it here
   in float64, in DeepMind's order. (Equivalently: the Lorensen marching-cubes area of the code's
   minority corners; the tests check this against scikit-image.)
3. **Distances (mm)** from every surfel of one mask to the nearest surfel of the other: the Euclidean
   distance between corner points with the spacing applied, read from
   ``scipy.ndimage.distance_transform_edt(sampling=spacing)`` of the other mask's surfel map.
4. **Robust Hausdorff distance.** In each direction the distances are sorted (ties by area, as the
   scorer's ``sorted(zip(distances, areas))``); the 95th percentile is the first distance at which
   the cumulative area fraction ``cumsum(areas) / sum(areas)`` reaches 0.95 (``searchsorted``, left);
   HD95 is the larger of the two directions.
5. **Empty masks** (:mod:`nnunet_diffrefine.evaluation.conventions`): ``"brats"``: both empty -> 0,
   one empty -> the penalty (374 mm); ``"nan"`` (nnU-Net): NaN when either mask is empty.

Speed: everything runs on the union bounding box of the two masks padded by one voxel, and each
direction needs one distance transform. MONAI's ``compute_hausdorff_distance`` differs by definition
(it takes the voxels on the mask edges, unweighted, instead of area-weighted surfels).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.evaluation.conventions import (
    BRATS_HD95_PENALTY_MM,
    EmptyConvention,
    check_empty_convention,
    check_penalty,
)
from nnunet_diffrefine.evaluation.grid import as_mask_pair, as_spacing, bounding_box

_NORMALS: np.ndarray | None = None


def neighbour_code_normals() -> np.ndarray:
    """DeepMind's neighbour-code -> area-normal table, ``(256, 4, 3)`` float64 in voxel units.

    Taken from MONAI on first use (that import is slow: torch); worker processes get it from the
    parent through :func:`set_neighbour_code_normals` instead.
    """
    global _NORMALS
    if _NORMALS is None:
        from monai.metrics import utils as monai_metric_utils

        table = monai_metric_utils._get_neighbour_code_to_normals_table()
        set_neighbour_code_normals(np.asarray(table.cpu().numpy(), dtype=np.float64))
    return _NORMALS  # type: ignore[return-value]


def set_neighbour_code_normals(normals: np.ndarray) -> None:
    """Install the ``(256, 4, 3)`` normals table (used to hand it to worker processes)."""
    global _NORMALS
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != (256, 4, 3):
        raise ValueError(f"the neighbour-code normals table must be (256, 4, 3), got {normals.shape}")
    _NORMALS = normals
    surfel_area_table.cache_clear()


@functools.lru_cache(maxsize=32)
def surfel_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area in mm² of the surfel of each of the 256 neighbour codes, ``(256,)`` float64."""
    sz, sy, sx = as_spacing(spacing)
    normals = neighbour_code_normals()
    table = np.zeros(256)
    for code in range(256):
        area = 0.0
        for nz, ny, nx in normals[code]:
            area += float(np.linalg.norm([nz * sy * sx, ny * sz * sx, nx * sz * sy]))
        table[code] = area
    table.setflags(write=False)
    return table


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Code of every grid corner of a boolean ``(Z, Y, X)`` mask, ``(Z + 1, Y + 1, X + 1)`` uint8.

    Corner ``(i, j, k)`` lies between voxels ``i - 1`` and ``i`` (etc.); voxels outside the mask's
    array count as outside.
    """
    padded = np.pad(np.asarray(mask, dtype=bool).view(np.uint8), 1)
    nz, ny, nx = (n - 1 for n in padded.shape)
    codes = np.zeros((nz, ny, nx), dtype=np.uint8)
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                codes |= padded[a : a + nz, b : b + ny, c : c + nx] << np.uint8(7 - (4 * a + 2 * b + c))
    return codes


@dataclass(frozen=True)
class SurfaceDistances:
    """Surfel distances (mm) and areas (mm²) of two masks, unsorted.

    ``pred_to_ref[i]`` is the distance from surfel ``i`` of the prediction to the reference surface
    (``inf`` if the reference is empty), ``pred_areas[i]`` its area; likewise ``ref_to_pred``.
    """

    pred_to_ref: np.ndarray
    pred_areas: np.ndarray
    ref_to_pred: np.ndarray
    ref_areas: np.ndarray


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Distances from each surfel of one boolean ``(Z, Y, X)`` mask to the surface of the other.

    ``spacing`` is ``(z, y, x)`` in mm. Both masks empty: four empty arrays.
    """
    pred, ref = as_mask_pair(pred, ref)
    spacing = as_spacing(spacing)
    box = bounding_box(pred | ref)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, empty, empty)
    areas = surfel_area_table(spacing)
    codes_pred, codes_ref = neighbour_codes(pred[box]), neighbour_codes(ref[box])
    border_pred = (codes_pred != 0) & (codes_pred != 255)
    border_ref = (codes_ref != 0) & (codes_ref != 255)
    return SurfaceDistances(
        pred_to_ref=_distances_to(border_ref, border_pred, spacing),
        pred_areas=areas[codes_pred[border_pred]],
        ref_to_pred=_distances_to(border_pred, border_ref, spacing),
        ref_areas=areas[codes_ref[border_ref]],
    )


def _distances_to(target: np.ndarray, points: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from every True corner of ``points`` to the nearest True corner of ``target``."""
    if not target.any():
        return np.full(int(np.count_nonzero(points)), np.inf)
    return ndimage.distance_transform_edt(~target, sampling=spacing)[points]


def directed_percentile(distances: np.ndarray, areas: np.ndarray, percent: float = 95.0) -> float:
    """Area-weighted ``percent``-th percentile of surfel distances (DeepMind's rule); ``inf`` if empty."""
    if distances.size == 0:
        return float("inf")
    order = np.lexsort((areas, distances))
    distances, areas = distances[order], areas[order]
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(index, distances.size - 1)])


def robust_hausdorff(distances: SurfaceDistances, percent: float = 95.0) -> float:
    """The larger of the two directed ``percent``-th percentiles (mm); ``inf`` if a mask is empty."""
    return max(
        directed_percentile(distances.ref_to_pred, distances.ref_areas, percent),
        directed_percentile(distances.pred_to_ref, distances.pred_areas, percent),
    )


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    empty_convention: EmptyConvention = "brats",
    penalty: float = BRATS_HD95_PENALTY_MM,
) -> float:
    """95th-percentile Hausdorff distance (mm) of two boolean ``(Z, Y, X)`` masks, as the BraTS scorer.

    ``spacing`` is ``(z, y, x)`` in mm. Empty masks: ``"brats"``: both empty -> 0, one empty ->
    ``penalty`` (374 mm); ``"nan"`` (nnU-Net): NaN when either is empty.
    """
    check_empty_convention(empty_convention)
    penalty = check_penalty(penalty)
    pred, ref = as_mask_pair(pred, ref)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not (has_pred and has_ref):
        if empty_convention == "nan":
            return float("nan")
        return 0.0 if not (has_pred or has_ref) else penalty
    return robust_hausdorff(surface_distances(pred, ref, spacing), 95.0)
