"""BraTS 2023 lesion-wise Dice and HD95.

Our reading of the BraTS 2023 scorer (github.com/rachitsaluja/BraTS-2023-Metrics, function
``get_lesion_wise_score``; BraTS-GLI/SSA/PED use dilation 3 and 50 mm³), for one region's boolean
``(Z, Y, X)`` masks:

1. **Lesions.** The reference is dilated ``dilation`` times with a 3 x 3 x 3 structuring element
   (``scipy.ndimage.generate_binary_structure(3, 2)`` in the scorer: the 18-neighbourhood, which is
   our default ``connectivity=18``; 6 and 26 are accepted) and the dilated mask is split into
   26-connected components. The reference voxels of one dilated component form one lesion: reference
   pieces closer than about twice the dilation are merged. (The scorer labels the 26-connected
   reference components first and relabels them by dilated component; the result is the same.)
2. **Matching.** The prediction is split into 26-connected components. A component is matched to a
   lesion when it has a voxel inside the lesion's dilated mask (for a lesion that is the lesion's
   dilated component). A component may match several lesions.
3. **Per-lesion scores.** Dice and HD95 (:mod:`nnunet_diffrefine.evaluation.surface`) between the
   lesion's own reference voxels and the union of *whole* matched components -- the components are
   not clipped to the dilated mask, and other lesions' voxels are not part of the reference.
   This is what "restricted" means in the scorer: each lesion is scored against what touches it.
   A lesion without a match (missed) scores Dice 0 and HD95 = penalty (374 mm).
4. **False positives.** Each predicted component matched to no lesion (small lesions included)
   counts once with Dice 0 and HD95 = penalty.
5. **Small lesions.** Lesions of volume <= ``min_volume_mm3`` (voxel count times the voxel volume) are
   left out of the score; components matched only to them are not false positives either.
6. **Score.** Lesion-wise Dice (HD95) = mean over the kept lesions and the false-positive components.
   Nothing to score (no kept lesion, no false positive; e.g. both masks empty): Dice 1, HD95 0.

Under the nnU-Net convention (``empty_convention="nan"``) a missed lesion or a false-positive
component still counts Dice 0 but has no HD95 (NaN); the lesion-wise HD95 is then the mean over the
matched lesions (NaN if there are none), and nothing to score gives NaN for both.

Deviation: ``dilation=0`` means no dilation here (the scorer would call scipy with ``iterations=0``,
which dilates until nothing changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.conventions import (
    BRATS_HD95_PENALTY_MM,
    EmptyConvention,
    check_empty_convention,
    check_penalty,
)
from nnunet_diffrefine.evaluation.grid import as_mask_pair, as_spacing, bounding_box, union_box
from nnunet_diffrefine.evaluation.surface import hd95

_STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}


@dataclass(frozen=True)
class LesionWiseParams:
    """Lesion-wise settings; the defaults are the BraTS 2023 GLI/SSA/PED ones.

    ``dilation``: iterations (voxels) of the dilation that merges nearby reference pieces and defines
    the matching region; ``connectivity``: neighbourhood of its structuring element (6, 18 or 26; the
    BraTS scorer uses 18); ``min_volume_mm3``: lesions of at most this volume (mm³) are left out.
    """

    dilation: int = 3
    connectivity: int = 18
    min_volume_mm3: float = 50.0

    def __post_init__(self) -> None:
        if int(self.dilation) != self.dilation or self.dilation < 0:
            raise InputError(
                f"the lesion dilation must be a whole number of voxels >= 0, got {self.dilation}"
            )
        if self.connectivity not in _STRUCTURE_RANK:
            raise InputError(f"the lesion dilation connectivity must be 6, 18 or 26, got {self.connectivity}")
        if not 0.0 <= float(self.min_volume_mm3) < float("inf"):
            raise InputError(f"the lesion volume threshold must be >= 0 mm³, got {self.min_volume_mm3}")


BRATS_LESION_PARAMS = LesionWiseParams()
"""The BraTS 2023 GLI settings: dilation 3 (18-neighbourhood), 50 mm³."""


@dataclass(frozen=True)
class Lesion:
    """One reference lesion: volume (mm³), number of matched predicted components, whether it is kept
    (volume above the threshold) and its Dice and HD95 (mm; NaN for lesions that are left out)."""

    volume_mm3: float
    num_matched: int
    kept: bool
    dice: float
    hd95: float


@dataclass(frozen=True)
class LesionWiseResult:
    """Lesion-wise Dice and HD95 (mm), the number of kept lesions, the number of false-positive
    predicted components, and every reference lesion (small ones included, ``kept=False``)."""

    dice: float
    hd95: float
    num_lesions: int
    num_fp: int
    lesions: tuple[Lesion, ...]


def lesion_wise_scores(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    params: LesionWiseParams = BRATS_LESION_PARAMS,
    empty_convention: EmptyConvention = "brats",
    hd95_penalty: float = BRATS_HD95_PENALTY_MM,
    known_hd95: float | None = None,
) -> LesionWiseResult:
    """BraTS 2023 lesion-wise scores of two boolean ``(Z, Y, X)`` masks (see the module docstring).

    ``spacing`` is ``(z, y, x)`` in mm. ``known_hd95``: HD95 of ``(pred, ref)`` if the caller already
    has it; reused when there is a single lesion and every predicted component is matched to it
    (then the lesion's masks are the whole masks).
    """
    check_empty_convention(empty_convention)
    hd95_penalty = check_penalty(hd95_penalty)
    pred, ref = as_mask_pair(pred, ref)
    spacing = as_spacing(spacing)
    voxel_mm3 = float(np.prod(spacing))
    box = bounding_box(pred | ref, margin=int(params.dilation))
    if box is None:
        return _score((), 0, empty_convention, hd95_penalty)
    pred, ref = pred[box], ref[box]

    pred_cc, num_components = cc3d.connected_components(
        np.ascontiguousarray(pred, dtype=np.uint8), connectivity=26, return_N=True
    )
    dilated = ref
    if params.dilation > 0:
        structure = ndimage.generate_binary_structure(3, _STRUCTURE_RANK[params.connectivity])
        dilated = ndimage.binary_dilation(ref, structure=structure, iterations=int(params.dilation))
    lesion_cc, num_lesions = cc3d.connected_components(
        np.ascontiguousarray(dilated, dtype=np.uint8), connectivity=26, return_N=True
    )

    # (lesion, component) pairs that share a voxel of the lesion's dilated mask
    touching = (pred_cc > 0) & (lesion_cc > 0)
    base = num_components + 1
    pairs = np.unique(lesion_cc[touching].astype(np.int64) * base + pred_cc[touching])
    pair_lesion, pair_component = pairs // base, pairs % base
    num_fp = num_components - np.unique(pair_component).size

    lesion_of_voxel = np.where(ref, lesion_cc, 0)
    volumes = np.bincount(lesion_of_voxel.ravel(), minlength=num_lesions + 1) * voxel_mm3
    lesion_boxes = ndimage.find_objects(lesion_cc)
    component_boxes = ndimage.find_objects(pred_cc)
    single_whole = num_lesions == 1 and num_fp == 0 and known_hd95 is not None

    lesions = []
    for k in range(1, num_lesions + 1):
        components = pair_component[pair_lesion == k]
        kept = bool(volumes[k] > params.min_volume_mm3)
        if not kept:
            lesions.append(Lesion(float(volumes[k]), int(components.size), False, float("nan"), float("nan")))
            continue
        if components.size == 0:
            missed_hd = float("nan") if empty_convention == "nan" else hd95_penalty
            lesions.append(Lesion(float(volumes[k]), 0, True, 0.0, missed_hd))
            continue
        sub = union_box([lesion_boxes[k - 1]] + [component_boxes[c - 1] for c in components])
        lesion_mask = lesion_of_voxel[sub] == k
        selected = np.zeros(base, dtype=bool)
        selected[components] = True
        matched = selected[pred_cc[sub]]
        overlap = int(np.count_nonzero(lesion_mask & matched))
        dice = 2.0 * overlap / (int(np.count_nonzero(lesion_mask)) + int(np.count_nonzero(matched)))
        distance = (
            float(known_hd95)
            if single_whole
            else hd95(matched, lesion_mask, spacing, empty_convention, hd95_penalty)
        )
        lesions.append(Lesion(float(volumes[k]), int(components.size), True, dice, distance))
    return _score(tuple(lesions), int(num_fp), empty_convention, hd95_penalty)


def _score(
    lesions: tuple[Lesion, ...], num_fp: int, empty_convention: EmptyConvention, penalty: float
) -> LesionWiseResult:
    """Mean over the kept lesions and the false-positive components (module docstring, step 6)."""
    kept = [lesion for lesion in lesions if lesion.kept]
    num_units = len(kept) + num_fp
    if num_units == 0:
        if empty_convention == "nan":
            return LesionWiseResult(float("nan"), float("nan"), 0, 0, lesions)
        return LesionWiseResult(1.0, 0.0, 0, 0, lesions)
    dice = sum(lesion.dice for lesion in kept) / num_units
    if empty_convention == "nan":
        defined = [lesion.hd95 for lesion in kept if not np.isnan(lesion.hd95)]
        distance = float(np.mean(defined)) if defined else float("nan")
    else:
        distance = (sum(lesion.hd95 for lesion in kept) + num_fp * penalty) / num_units
    return LesionWiseResult(float(dice), float(distance), len(kept), num_fp, lesions)
