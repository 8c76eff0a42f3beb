"""BraTS evaluation beyond nnU-Net: HD95 as the BraTS scorer, sensitivity, precision, volumes and
BraTS 2023 lesion-wise Dice and HD95, written to nnU-Net's summary.json layout.

Modules, one job each:

- ``surface``: surfels, areas and distances (DeepMind's definition), :func:`hd95`;
- ``overlap``: TP/FP/FN/TN, Dice, IoU, sensitivity, precision, volumes (:func:`overlap_metrics`);
- ``lesionwise``: BraTS 2023 lesion-wise scores (:func:`lesion_wise_scores`);
- ``case``: every metric of one case (:func:`evaluate_case`, :func:`evaluate_arrays`);
- ``folder``: a folder pair, like ``nnUNetv2_evaluate_folder`` (:func:`evaluate_folder`);
- ``summary``: nnU-Net's aggregation, summary.json and summary.csv;
- ``conventions``: empty masks (BraTS: both empty Dice 1 / HD95 0, one empty Dice 0 / HD95 374 mm;
  or nnU-Net's NaNs).

Arrays are ``(Z, Y, X)``, spacings ``(z, y, x)`` in mm, distances in mm, volumes in cm³ (lesion
volume thresholds in mm³). Importing this package is light (numpy, scipy, SimpleITK, cc3d); nnU-Net
and MONAI are imported by the functions that need them.
"""

from nnunet_diffrefine.evaluation.case import METRIC_NAMES, evaluate_arrays, evaluate_case
from nnunet_diffrefine.evaluation.conventions import BRATS_HD95_PENALTY_MM, EMPTY_CONVENTIONS
from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder
from nnunet_diffrefine.evaluation.lesionwise import LesionWiseParams, LesionWiseResult, lesion_wise_scores
from nnunet_diffrefine.evaluation.overlap import overlap_metrics, region_mask
from nnunet_diffrefine.evaluation.surface import hd95, robust_hausdorff, surface_distances

__all__ = [
    "BRATS_HD95_PENALTY_MM",
    "EMPTY_CONVENTIONS",
    "METRIC_NAMES",
    "LesionWiseParams",
    "LesionWiseResult",
    "dataset_regions",
    "evaluate_arrays",
    "evaluate_case",
    "evaluate_folder",
    "hd95",
    "lesion_wise_scores",
    "overlap_metrics",
    "region_mask",
    "robust_hausdorff",
    "surface_distances",
]
