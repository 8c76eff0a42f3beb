"""The voxelwise-classifier ceiling: what a model without any spatial context scores on a dataset.

If a classifier that looks at one voxel at a time (and its 3x3x3 neighbourhood mean) segments a
dataset as well as a trained network, the dataset cannot show what spatial models, let alone
refiners, add. :func:`voxelwise_ceiling` measures it:

- **Features** per brain voxel (any channel non-zero): each channel z-scored over the brain of its own
  case, and the 3x3x3 mean of that z-scored channel (``2 I`` features).
- **Model**: scikit-learn's quadratic discriminant analysis (one Gaussian per class: background inside
  the brain, 1 NCR, 2 ED, 3 ET in the BraTS 2023 labels), fit on ``voxels_per_class`` voxels drawn per
  class and training case, with the class priors of all the training voxels (so the sample's balance
  does not bias the decision); ``reg_param`` 1e-3 keeps singular covariances invertible; a class with
  fewer than 10 voxels per feature in the training cases is left out (never predicted).
- **Protocol**: K-fold over the cases (fold k holds every K-th case of the sorted ids, as the benchmark's
  splits); each case is predicted by the model fit on the other folds; per case the Dice of WT {1,2,3},
  TC {1,3} and ET {3} (both empty: 1, one empty: 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
CLASSES = (0, 1, 2, 3)


@dataclass
class LabelledVolume:
    """One case: ``images`` ``(I, Z, Y, X)`` (any scale; 0 outside the brain) and ``labels`` ``(Z, Y, X)``
    in the BraTS 2023 labels (0, 1 NCR, 2 ED, 3 ET)."""

    case_id: str
    images: np.ndarray
    labels: np.ndarray


def brain_mask(images: np.ndarray) -> np.ndarray:
    """``(Z, Y, X)`` True where any channel of ``(I, Z, Y, X)`` is non-zero (skull-stripped data)."""
    return np.any(images != 0, axis=0)


def voxel_features(images: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``(N, 2 I)`` features of the ``N`` brain voxels (see the module docstring)."""
    from scipy.ndimage import uniform_filter

    columns = []
    for channel in images.astype(np.float32):
        values = channel[brain]
        z = np.where(brain, (channel - values.mean()) / max(float(values.std()), 1e-6), 0).astype(np.float32)
        columns += [z[brain], uniform_filter(z, size=3, mode="constant")[brain]]
    return np.stack(columns, axis=1)


def region_dice(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """``{"WT", "TC", "ET": Dice}`` of two label maps (both empty: 1, one empty: 0)."""
    out = {}
    for name, labels in REGIONS.items():
        p, r = np.isin(pred, labels), np.isin(ref, labels)
        denom = int(p.sum()) + int(r.sum())
        out[name] = 1.0 if denom == 0 else float(2 * np.logical_and(p, r).sum() / denom)
    return out


def fit_voxel_classifier(cases: Sequence[LabelledVolume], voxels_per_class: int = 2000, seed: int = 0):
    """A fitted ``QuadraticDiscriminantAnalysis`` on ``cases`` (see the module docstring)."""
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    rng = np.random.default_rng(seed)
    features, targets = [], []
    counts = np.zeros(len(CLASSES))
    for case in cases:
        brain = brain_mask(case.images)
        x, y = voxel_features(case.images, brain), case.labels[brain]
        for k, label in enumerate(CLASSES):
            index = np.flatnonzero(y == label)
            counts[k] += index.size
            if index.size:
                take = rng.choice(index, size=min(voxels_per_class, index.size), replace=False)
                features.append(x[take])
                targets.append(y[take])
    x, y = np.concatenate(features), np.concatenate(targets)
    # a class seen in fewer voxels than 10 x the features has no covariance to fit: left out
    kept = [k for k, label in enumerate(CLASSES) if (y == label).sum() >= 10 * x.shape[1]]
    keep = np.isin(y, [CLASSES[k] for k in kept])
    priors = counts[kept] / counts[kept].sum()
    return QuadraticDiscriminantAnalysis(priors=priors, reg_param=1e-3).fit(x[keep], y[keep])


def predict_labels(model, images: np.ndarray) -> np.ndarray:
    """``(Z, Y, X)`` labels predicted voxel by voxel inside the brain of ``images`` (0 outside)."""
    brain = brain_mask(images)
    out = np.zeros(brain.shape, np.uint8)
    out[brain] = model.predict(voxel_features(images, brain))
    return out


def voxelwise_ceiling(
    cases: Sequence[LabelledVolume], folds: int = 3, voxels_per_class: int = 2000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """``{case_id: {"WT", "TC", "ET": Dice}}``, every case predicted by a classifier fit on the other
    folds' cases (see the module docstring)."""
    ordered = sorted(cases, key=lambda c: c.case_id)
    if not 2 <= folds <= len(ordered):
        raise ValueError(f"{folds} folds need at least {folds} cases (got {len(ordered)})")
    scores = {}
    for k in range(folds):
        train = [c for i, c in enumerate(ordered) if i % folds != k]
        model = fit_voxel_classifier(train, voxels_per_class, seed + k)
        for case in ordered[k::folds]:
            scores[case.case_id] = region_dice(predict_labels(model, case.images), case.labels)
    return scores


def mean_regions(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean over the cases of each region's Dice, and ``"mean"`` over the regions."""
    means = {r: float(np.mean([s[r] for s in scores.values()])) for r in REGIONS}
    return {**means, "mean": float(np.mean(list(means.values())))}
