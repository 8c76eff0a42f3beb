"""Apply a refiner only where cross-validation shows a gain (nnU-Net's rule for its post-processing).

For every out-of-fold case refined by a refiner that did not train on it (the inner cross-validation of
:func:`~nnunet_diffrefine.refine.train.train_refiner`), the blends ``(1 - lambda) p + lambda r`` of the
prior ``p`` and the refined probabilities ``r`` are scored for each lambda of :data:`BLENDS`: per output
channel (region) for region-based outputs, on the mean foreground Dice for label-based ones (one lambda
for every class, so the blend stays a distribution). The gain of a lambda on a case is its Dice minus the
prior's (threshold 0.5 / argmax, both empty: 1). A lambda > 0 is kept only where the paired lower bound of
its mean gain (percentile bootstrap over the cases, 95 %) is above 0 and, when HD95 changes are given, its
mean HD95 change (mm, over the cases where both HD95s are defined) is at most a tolerance (a Dice gain
bought with voxels far from the tumour is not a gain; the tolerance absorbs the one-voxel quantisation of
HD95); among those, the one with the largest mean gain; elsewhere lambda = 0, the prior. With fewer than
:data:`MIN_CASES` cases nothing is applied: a bootstrap bound of 2-5 cases that all gain is above 0, yet
no exact paired test (sign test, Wilcoxon) can reach two-sided 5 % on 5 cases or fewer. The
:class:`Gate` (lambdas, per-case gains and HD95 changes, their bounds) is saved in ``refiner.json`` and
applied by ``refine``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnunet_diffrefine.evaluation.surface import hd95
from nnunet_diffrefine.refine.metrics import masks
from nnunet_diffrefine.utils.stats import bootstrap_ci

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIN_CASES = 6
"""The fewest cross-validated cases on which a gain can be shown: 6 that all gain give a two-sided exact
sign-test p of 2 / 2**6 = 0.031; 5 give 0.0625."""
ALL_CLASSES = "all classes"


def unit_names(dataset_json: dict) -> dict[str, str]:
    """``{channel index: region name}`` of a region-based dataset.json (nnU-Net's label order)."""
    names = [
        k for k, v in dataset_json["labels"].items() if k != "background" and isinstance(v, (list, tuple))
    ]
    return {str(i): n for i, n in enumerate(names)}


def _dice(pred: np.ndarray, target: np.ndarray) -> float:
    denom = pred.sum() + target.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(pred, target).sum() / denom)


def channel_dice(probabilities: np.ndarray, target: np.ndarray, regions: bool) -> list[float]:
    """Dice per region channel (regions) or ``[mean foreground Dice]`` (labels) of ``(C, ...)`` maps."""
    pred, ref = masks(probabilities, regions), masks(target, regions)
    scores = [_dice(pred[c], ref[c]) for c in range(pred.shape[0])]
    return scores if regions else [float(np.mean(scores))]


@dataclass(frozen=True)
class Gate:
    """Per output unit (a region channel, or :data:`ALL_CLASSES`), the blend weight of the refiner.

    ``blends``: ``{unit: lambda}``; ``evidence``: ``{unit: {"gains": {lambda: [per-case gain]}, "mean":
    {lambda: mean}, "ci95": {lambda: [low, high]}, "cases": [...]}}`` (lambdas as strings, JSON keys),
    with ``"hd95_change"`` (``{lambda: [per-case mm or None]}``), ``"hd95_mean"`` (``{lambda: mm or
    None}``) and ``"hd95_tolerance_mm"`` where the gate also checked HD95."""

    blends: dict[str, float]
    evidence: dict = field(default_factory=dict)
    regions: bool = True

    def weights(self, num_channels: int) -> np.ndarray:
        """``(C,)`` blend weights for a ``(C, ...)`` map."""
        if not self.regions:
            return np.full(num_channels, self.blends[ALL_CLASSES], np.float32)
        return np.array([self.blends[str(c)] for c in range(num_channels)], np.float32)

    def apply(self, prior: np.ndarray, refined: np.ndarray) -> np.ndarray:
        """``(1 - lambda_c) p_c + lambda_c r_c`` per channel, ``(C, Z, Y, X)`` float32."""
        w = self.weights(prior.shape[0]).reshape(-1, *[1] * (prior.ndim - 1))
        return ((1 - w) * prior + w * refined).astype(np.float32)

    @property
    def applied_anywhere(self) -> bool:
        return any(v > 0 for v in self.blends.values())

    def describe(self, names: dict[str, str] | None = None) -> list[str]:
        """One line per unit: whether the refiner is applied there and its validation gain."""
        lines = []
        for unit, blend in self.blends.items():
            name = (names or {}).get(unit, unit if unit == ALL_CLASSES else f"channel {unit}")
            ev = self.evidence.get(unit, {})
            means = {k: v for k, v in ev.get("mean", {}).items() if float(k) > 0}
            best = str(blend) if blend > 0 else max(means, key=means.get, default=str(max(BLENDS)))
            gain, ci = ev.get("mean", {}).get(best), ev.get("ci95", {}).get(best)
            shown = (
                f"validation gain {gain:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
                if gain is not None
                else "no evidence"
            )
            change = ev.get("hd95_mean", {}).get(best)
            if change is not None:
                shown += f", HD95 {change:+.2f} mm"
            state = f"applied with lambda {blend:g}" if blend > 0 else "not applied (prior kept)"
            if blend == 0 and _too_few(ev):
                state += f": {len(ev['cases'])} cases are too few to show a gain (at least {ev['min_cases']})"
            elif blend == 0 and _hd95_refused(ev, best):
                state += f": its HD95 is worse by more than {ev['hd95_tolerance_mm']:g} mm"
            lines.append(f"{name}: {state}; {shown} at lambda {best} on {len(ev.get('cases', []))} cases")
        return lines

    def to_json(self) -> dict:
        return {"blends": self.blends, "evidence": self.evidence, "regions": self.regions}

    @classmethod
    def from_json(cls, data: dict) -> Gate:
        return cls(
            {str(k): float(v) for k, v in data["blends"].items()}, data.get("evidence", {}), data["regions"]
        )

    @classmethod
    def everywhere(cls, num_channels: int, regions: bool) -> Gate:
        """Lambda 1 everywhere (``--force-refiner``)."""
        units = [str(c) for c in range(num_channels)] if regions else [ALL_CLASSES]
        return cls(dict.fromkeys(units, 1.0), {}, regions)


def blend_gains(prior: np.ndarray, refined: np.ndarray, target: np.ndarray, regions: bool) -> np.ndarray:
    """``(len(BLENDS), units)``: Dice of each blend minus the prior's, for one case (maps ``(C, ...)``)."""
    base = np.asarray(channel_dice(prior, target, regions))
    return np.stack(
        [
            np.asarray(channel_dice((1 - lam) * prior + lam * refined, target, regions)) - base
            for lam in BLENDS
        ]
    )


def blend_hd95_changes(
    prior: np.ndarray, refined: np.ndarray, target: np.ndarray, regions: bool, spacing: tuple[float, ...]
) -> np.ndarray:
    """``(len(BLENDS), units)``: HD95 (mm, at ``spacing`` ``(z, y, x)``) of each blend minus the prior's,
    for one case; NaN where either is undefined (an empty mask: Dice judges those). Label-based outputs:
    the mean over the foreground classes where defined."""
    ref = masks(target, regions)

    def per_channel(probabilities: np.ndarray) -> np.ndarray:
        pred = masks(probabilities, regions)
        return np.array([hd95(pred[c], ref[c], spacing, "nan") for c in range(pred.shape[0])])

    base = per_channel(prior)
    rows = []
    for lam in BLENDS:
        # lambda 0 is the prior itself: 0 where its HD95 is defined, NaN where not
        change = base - base if lam == 0 else per_channel((1 - lam) * prior + lam * refined) - base
        if not regions:
            change = np.array([np.nanmean(change) if np.isfinite(change).any() else np.nan])
        rows.append(change)
    return np.stack(rows)


def _hd95_refused(ev: dict, lam: str) -> bool:
    """Whether ``lam`` gained Dice (lower bound above 0) but its mean HD95 change exceeds the tolerance."""
    change, ci = ev.get("hd95_mean", {}).get(lam), ev.get("ci95", {}).get(lam)
    tolerance = ev.get("hd95_tolerance_mm")
    return change is not None and tolerance is not None and ci[0] > 0 and change > tolerance


def _too_few(ev: dict) -> bool:
    return len(ev.get("cases", [])) < ev.get("min_cases", 0)


def decide_gate(
    gains: dict[str, np.ndarray],
    regions: bool,
    seed: int = 0,
    level: float = 0.95,
    hd95_changes: dict[str, np.ndarray] | None = None,
    hd95_tolerance_mm: float = math.inf,
    min_cases: int = MIN_CASES,
) -> Gate:
    """The :class:`Gate` from ``{case_id: blend_gains(...)}`` of cross-validated cases and, optionally,
    ``{case_id: blend_hd95_changes(...)}`` of the same cases (see the module docstring); with fewer than
    ``min_cases`` cases the prior is kept everywhere."""
    if not gains:
        raise ValueError("the gate needs at least one cross-validated case")
    cases = sorted(gains)
    table = np.stack([np.asarray(gains[c], dtype=float) for c in cases])  # (cases, lambdas, units)
    hd = None
    if hd95_changes is not None:
        nan = np.full(table.shape[1:], np.nan)
        hd = np.stack([np.asarray(hd95_changes.get(c, nan), dtype=float) for c in cases])
    units = [str(c) for c in range(table.shape[2])] if regions else [ALL_CLASSES]
    blends, evidence = {}, {}
    for u, unit in enumerate(units):
        ev: dict = {"cases": cases, "gains": {}, "mean": {}, "ci95": {}, "min_cases": min_cases}
        if hd is not None:
            ev.update(hd95_change={}, hd95_mean={}, hd95_tolerance_mm=hd95_tolerance_mm)
        chosen, best = 0.0, 0.0
        for j, lam in enumerate(BLENDS):
            values = table[:, j, u]
            ci, mean = bootstrap_ci(values, seed=seed, level=level), float(values.mean())
            ev["gains"][str(lam)] = [round(float(v), 6) for v in values]
            ev["mean"][str(lam)], ev["ci95"][str(lam)] = mean, ci
            if hd is not None:
                changes = hd[:, j, u]
                ev["hd95_change"][str(lam)] = [
                    round(float(v), 4) if np.isfinite(v) else None for v in changes
                ]
                defined = changes[np.isfinite(changes)]
                ev["hd95_mean"][str(lam)] = float(defined.mean()) if defined.size else None
            if lam > 0 and ci[0] > 0 and mean > best and not _hd95_refused(ev, str(lam)) and not _too_few(ev):
                chosen, best = lam, mean
        blends[unit], evidence[unit] = chosen, ev
    return Gate(blends, evidence, regions)


def fold_gates(
    refiners: list, configs: list[dict], force: bool, warn: Callable[[str], None]
) -> list[Gate | None]:
    """Each fold's :class:`~.gate.Gate` (None: applied everywhere: an unconditional refiner, or one saved
    without a gate, which is warned about); ``force``: lambda 1 everywhere."""
    gates: list[Gate | None] = []
    for refiner, config in zip(refiners, configs):
        if force or not refiner.uses_prior:
            gates.append(None)
        elif config.get("gate"):
            gates.append(Gate.from_json(config["gate"]))
        else:
            warn(
                f"the {refiner.name} refiner was saved without a validation gate: applied everywhere, unvalidated"
            )
            gates.append(None)
    return gates


def print_gates(folds: list[int], gates: list[Gate | None], dataset_json: dict, forced: bool) -> None:
    """What ``refine`` prints: per fold and region, whether the refiner is applied and its validation gain."""
    if forced:
        print("refine: --force-refiner: the refiner is applied everywhere, whatever its validation showed")
    for fold, gate in zip(folds, gates):
        if gate is not None:
            for line in gate.describe(unit_names(dataset_json)):
                print(f"refine: fold {fold}: {line}")
