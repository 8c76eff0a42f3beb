"""The validation Dice the refiners' training loop selects on (threshold 0.5 / argmax, as nnU-Net)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def mean_dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean Dice over the channels of boolean masks ``(C, ...)`` (both empty: 1)."""
    scores = []
    for c in range(pred.shape[0]):
        p, t = pred[c], target[c]
        denom = p.sum() + t.sum()
        scores.append(1.0 if denom == 0 else 2.0 * np.logical_and(p, t).sum() / denom)
    return float(np.mean(scores))


def masks(probabilities: np.ndarray, regions: bool) -> np.ndarray:
    """Binary masks ``(C', ...)``: regions thresholded at 0.5, or argmax one-hot of the foreground classes."""
    if regions:
        return probabilities > 0.5
    winner = probabilities.argmax(0)
    return np.stack([winner == j for j in range(1, probabilities.shape[0])])


@dataclass
class ValidationResult:
    """Mean validation Dice of the refined masks and of the priors, values chosen on the validation
    cases (kept with the best epoch, e.g. MedSegDiff's fusion weight) and diagnostics that are only
    reported (e.g. the Dice of each MedSegDiff branch alone)."""

    dice: float
    prior_dice: float
    choices: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)


def validation_dice(
    refine: Callable[[np.ndarray, np.ndarray, int], np.ndarray], cases: list, regions: bool
) -> ValidationResult:
    """Mean Dice of ``refine(prior, image, seed)`` (case ``i`` sampled with seed ``i``) and of the priors."""
    refined, prior = [], []
    for i, case in enumerate(cases):
        target = masks(case.target, regions)
        refined.append(mean_dice(masks(refine(case.prior, case.image, i), regions), target))
        prior.append(mean_dice(masks(case.prior, regions), target))
    return ValidationResult(float(np.mean(refined)), float(np.mean(prior)))
