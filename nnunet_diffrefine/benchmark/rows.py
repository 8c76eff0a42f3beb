"""Rows of a refinement table from per-case scores, and the base models' learning curves.

Shared by the phantom benchmark (``benchmarks/bench_refinement.py``: a held-out test split) and the
real-data benchmark (``benchmarks/bench_refinement_real.py``: cross-validated stacking over every
case), so both report the same JSON fields:

- :func:`row_record`: one entry of ``rows`` (means over the cases of the mean Dice and HD95 over the
  regions, per-region means, and for a refined row the paired differences to its prior: mean, bootstrap
  95 % CI and Wilcoxon p, for Dice and HD95);
- :func:`paired_comparison`: two rows compared on the same cases (e.g. conditioned vs scratch);
- :func:`learning_curves`: what nnU-Net logged per epoch in each fold's ``checkpoint_final.pth``;
- :func:`stage_times`: the stage wall times of a record, as the pages print them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_diffrefine.benchmark.paired import paired_difference

Scores = dict[str, dict[str, float]]
"""``{case: {"dice": .., "hd95": .., "Dice TC": .., "HD95 TC": .., ...}}`` (:func:`~.scores.per_case_scores`)."""


def _mean(scores: Scores, key: str) -> float:
    return float(np.mean([case[key] for case in scores.values()]))


def paired_comparison(a: Scores, b: Scores, seed: int) -> dict:
    """``b - a`` per case for the mean Dice and the mean HD95 (mm): means, 95 % CIs, Wilcoxon p."""
    dice = paired_difference({c: v["dice"] for c, v in a.items()}, {c: v["dice"] for c, v in b.items()}, seed)
    hd95 = paired_difference({c: v["hd95"] for c, v in a.items()}, {c: v["hd95"] for c, v in b.items()}, seed)
    return {
        "delta_dice": dice["mean"],
        "delta_dice_ci95": dice["ci95"],
        "wilcoxon_p": dice["wilcoxon_p"],
        "delta_hd95": hd95["mean"],
        "delta_hd95_ci95": hd95["ci95"],
        "wilcoxon_p_hd95": hd95["wilcoxon_p"],
    }


def row_record(
    name: str,
    own: Scores,
    regions: Sequence[str],
    prior: str | None = None,
    prior_scores: Scores | None = None,
    seed: int = 0,
) -> dict:
    """One entry of ``rows``: ``name``, ``prior``, ``mean_dice``, ``mean_hd95`` (mm), ``dice_<region>``,
    ``hd95_<region>``, ``num_cases`` and, when ``prior`` is given, :func:`paired_comparison` to it."""
    record = {
        "name": name,
        "prior": prior,
        "mean_dice": _mean(own, "dice"),
        "mean_hd95": _mean(own, "hd95"),
        **{f"dice_{r}": _mean(own, f"Dice {r}") for r in regions},
        **{f"hd95_{r}": _mean(own, f"HD95 {r}") for r in regions},
        "num_cases": len(own),
    }
    if prior is not None:
        if prior_scores is None:
            raise ValueError(f"row {name!r}: the scores of its prior {prior!r} are needed")
        record.update(paired_comparison(prior_scores, own, seed))
    return record


def learning_curves(
    models: dict[str, Path], folds: Sequence[int]
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per row (``{row: nnU-Net model folder}``) and fold, the EMA of the validation pseudo-Dice, the
    training and validation losses, the learning rate and the wall time (s, ``epoch_seconds``) per epoch
    (folds not finished are left out). The epoch times are nnU-Net's own epoch start/end timestamps, kept
    in its checkpoints, so they add up a training that resumed over several sittings (an epoch redone after
    a resume counts once; the final validation is not an epoch and is not in them)."""
    import torch

    curves: dict = {}
    for row, model in models.items():
        for f in folds:
            checkpoint = Path(model) / f"fold_{f}" / "checkpoint_final.pth"
            if not checkpoint.is_file():
                continue
            logged = torch.load(checkpoint, map_location="cpu", weights_only=False)["logging"]
            curves.setdefault(row, {})[str(f)] = {
                key: [round(float(v), 4) for v in logged[name]]
                for key, name in (
                    ("ema_pseudo_dice", "ema_fg_dice"),
                    ("train_loss", "train_losses"),
                    ("val_loss", "val_losses"),
                    ("lr", "lrs"),
                )
            }
            if "epoch_start_timestamps" in logged and "epoch_end_timestamps" in logged:
                starts, ends = logged["epoch_start_timestamps"], logged["epoch_end_timestamps"]
                curves[row][str(f)]["epoch_seconds"] = [round(float(e - s), 1) for s, e in zip(starts, ends)]
    return curves


def curve_table(curves: dict) -> list[str]:
    """Markdown lines: the mean over the folds of the EMA pseudo-Dice at 25/50/75/100 % of training, the
    final training loss and, when any fold has ``epoch_seconds``, the training's wall time summed over its
    epochs and folds (h; "n/a" for a row with a fold that predates them; pages of older runs keep their
    three columns)."""
    timed = any("epoch_seconds" in c for folds in curves.values() for c in folds.values())
    lines = [
        "| model | EMA pseudo-Dice at 25 % / 50 % / 75 % / 100 % of training (mean over folds) | final train loss |"
        + (" training time, all folds (h; nnU-Net's epoch times, validation excluded) |" if timed else ""),
        "|---|---|---|" + ("---|" if timed else ""),
    ]
    for row, folds in curves.items():
        length = min(len(c["ema_pseudo_dice"]) for c in folds.values())
        ema = np.mean([c["ema_pseudo_dice"][:length] for c in folds.values()], axis=0)
        at = [ema[max(0, int(round(q * len(ema))) - 1)] for q in (0.25, 0.5, 0.75, 1.0)]
        loss = np.mean([c["train_loss"][length - 1] for c in folds.values()])
        line = f"| {row} | {' / '.join(f'{v:.3f}' for v in at)} | {loss:.3f} |"
        if timed:
            hours = (
                f"{sum(sum(c['epoch_seconds']) for c in folds.values()) / 3600:.2f}"
                if all("epoch_seconds" in c for c in folds.values())
                else "n/a"
            )
            line += f" {hours} |"
        lines.append(line)
    return lines


def stage_times(record: dict, skip_suffix: str | None = None) -> str:
    """``"name 12.3, other 45.6 (2 sittings stopped before it finished included)"``: the record's
    ``stage_seconds`` (s) with its ``stage_unfinished_sittings``; names ending in ``skip_suffix`` left out."""
    unfinished = record.get("stage_unfinished_sittings", {})
    parts = []
    for name, seconds in record["stage_seconds"].items():
        if skip_suffix and name.endswith(skip_suffix):
            continue
        n = unfinished.get(name, 0)
        stopped = f" ({n} sitting{'s' if n > 1 else ''} stopped before it finished included)" if n else ""
        parts.append(f"{name} {seconds}{stopped}")
    return ", ".join(parts)
