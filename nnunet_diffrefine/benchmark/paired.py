"""Paired comparisons of two rows on the same cases, and the score of an uncertainty map.

- :func:`paired_difference`: per-case differences ``b - a`` (e.g. refined minus its prior), their mean,
  a percentile bootstrap 95 % confidence interval of the mean (cases resampled with replacement,
  seeded) and the two-sided Wilcoxon signed-rank p-value (scipy; 1.0 when every difference is 0).
- :func:`auroc`: the area under the ROC curve of a score for binary labels, from the Mann-Whitney U
  statistic with average ranks for ties (written here to avoid scikit-learn for one function).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_diffrefine.utils.stats import bootstrap_ci

__all__ = ["auroc", "bootstrap_ci", "paired_difference", "wilcoxon_p"]


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (1.0 when all are zero)."""
    from scipy.stats import wilcoxon

    differences = np.asarray(differences, dtype=float)
    if differences.size == 0 or not np.any(differences != 0):
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_difference(a: dict[str, float], b: dict[str, float], seed: int = 0) -> dict:
    """``b - a`` over the cases both have: mean, bootstrap 95 % CI, Wilcoxon p, number of cases."""
    cases = sorted(set(a) & set(b))
    differences = [float(b[c]) - float(a[c]) for c in cases]
    return {
        "mean": float(np.mean(differences)) if differences else float("nan"),
        "ci95": bootstrap_ci(differences, seed=seed),
        "wilcoxon_p": wilcoxon_p(differences),
        "num_cases": len(cases),
    }


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (NaN when a class is missing)."""
    from scipy.stats import rankdata

    scores, labels = np.ravel(scores).astype(float), np.ravel(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))
