"""Rows of an earlier run of the cross-validated benchmark, read from its committed results JSON.

A base model that takes hours per row on 2 CPU cores cannot always be trained in the same sitting as the
rows it is compared with, and the work folder (trained models, real-derived priors) cannot be kept in the
repository. What can be kept is each row's per-case scores. A run given ``--reference FILE`` adds what
``FILE`` scored and it did not: whole rows, or the folds of a row that it trained only in part (a model that
needs more than one sitting trains a fold or two at a time; rows still missing folds are kept in the
record's ``partial_per_case`` for the next run), with their refiner details and learning curves, and pairs
every complete row of both by case (paired bootstrap CI, Wilcoxon p), which is sound only when both runs
followed the same protocol on the same folds: :func:`reference_problems` lists every setting that
differs, and :func:`read_reference` refuses such a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_diffrefine.errors import InputError

PROTOCOL_SETTINGS = (
    "data",
    "num_cases",
    "folds",
    "spacing",
    "target_spacing_mm",
    "epochs",
    "iters",
    "refiner_epochs",
    "refiner_iters",
    "refiner_patch",
    "refiner_set",
    "gate_folds",
    "seed",
)
"""Settings that must be equal for two runs' rows to be paired (``folds``: the case lists per fold)."""
SCHEDULE_LEFT_OUT = ("keep_checkpoints",)
"""Keys of ``cpu_schedule`` that do not change a model (extra snapshots kept on disk)."""
REFERENCE_STAGE = " (reference)"
"""Suffix of the stage times a run read from its reference (in ``stage_seconds``)."""


def reference_problems(reference_settings: dict, settings: dict) -> list[str]:
    """Every protocol setting in which a reference run differs from this one (empty: rows can be paired)."""
    problems = [
        f"{key}: {reference_settings.get(key)!r} there, {settings.get(key)!r} here"
        for key in PROTOCOL_SETTINGS
        if _jsonable(reference_settings.get(key)) != _jsonable(settings.get(key))
    ]
    ref_schedule, schedule = (
        {k: v for k, v in (s.get("cpu_schedule") or {}).items() if k not in SCHEDULE_LEFT_OUT}
        for s in (reference_settings, settings)
    )
    if ref_schedule != schedule:
        problems.append(f"cpu_schedule: {ref_schedule} there, {schedule} here")
    return problems


def _jsonable(value: object) -> object:
    """``value`` as it reads back from JSON (tuples as lists), so that saved and live settings compare."""
    return json.loads(json.dumps(value))


def read_reference(path: Path, settings: dict) -> dict:
    """The results record at ``path`` (a ``bench_refinement_real.py`` JSON), checked against this run's
    ``settings`` (the record's ``settings`` field); one :class:`InputError` naming the file and every
    difference otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: reference results file does not exist") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable results JSON ({e})") from None
    missing = [k for k in ("settings", "per_case", "commit") if k not in record]
    if missing:
        raise InputError(f"{path}: not a cross-validated benchmark record (no {', '.join(missing)})")
    problems = reference_problems(record["settings"], settings)
    if problems:
        raise InputError(f"{path}: its rows cannot be paired with this run's: " + "; ".join(problems))
    return record


def imported_folds(reference: dict, own: dict[str, set[int]], splits: list[dict], path: Path) -> dict:
    """What the reference scored that this run did not (``own``: the folds of each row this run scored):
    ``{"scores": {row: {fold: {case: scores}}}, "refiners": {row: {fold: details}}, "learning_curves":
    {row: {fold: curves}}, "patch_size": {row: patch}, "stage_seconds": {stage: s},
    "stage_unfinished_sittings": {stage: n}}``, from its complete
    rows (``per_case``) and its rows with only some folds scored (``partial_per_case``). The cases of
    every imported fold must be exactly that fold's cases in ``splits``."""
    fold_of = {case: k for k, split in enumerate(splits) for case in split["val"]}
    found: dict[str, dict[int, dict]] = {}
    for row, per_case in reference["per_case"].items():
        if set(per_case) != set(fold_of):
            raise InputError(f"{path}: row {row!r} holds other cases than this run")
        for case, scores in per_case.items():
            found.setdefault(row, {}).setdefault(fold_of[case], {})[case] = scores
    for row, folds in reference.get("partial_per_case", {}).items():
        for f, per_case in folds.items():
            if not 0 <= int(f) < len(splits) or set(per_case) != set(splits[int(f)]["val"]):
                raise InputError(f"{path}: row {row!r} fold {f} holds other cases than this run's fold {f}")
            found.setdefault(row, {})[int(f)] = per_case
    scores = {
        row: {f: sc for f, sc in sorted(folds.items()) if f not in own.get(row, set())}
        for row, folds in found.items()
    }
    scores = {row: folds for row, folds in scores.items() if folds}

    def _folds_of(field: dict) -> dict:
        return {
            row: {f: v for f, v in field[row].items() if int(f) in scores[row]}
            for row in scores
            if row in field and any(int(f) in scores[row] for f in field[row])
        }

    wanted = {
        f"{kind} {row} fold {f}"
        for row, folds in scores.items()
        for f in folds
        for kind in ("train", "train refiner", "refine")
    }
    return {
        "scores": scores,
        "refiners": _folds_of(reference.get("refiners", {})),
        "learning_curves": _folds_of(reference.get("learning_curves", {})),
        "patch_size": {r: p for r, p in reference["settings"].get("patch_size", {}).items() if r in scores},
        **{
            field: {  # a reference that read them from its own reference marks them so
                k.removesuffix(REFERENCE_STAGE): v
                for k, v in reference.get(field, {}).items()
                if k.removesuffix(REFERENCE_STAGE) in wanted
            }
            for field in ("stage_seconds", "stage_unfinished_sittings")
        },
    }
