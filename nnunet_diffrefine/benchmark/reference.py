"""Rows of an earlier run of the cross-validated benchmark, read from its committed results JSON.

A base model that takes hours per row on 2 CPU cores cannot always be trained in the same sitting as the
rows it is compared with, and the work folder (trained models, real-derived priors) cannot be kept in the
repository. What can be kept is each row's per-case scores. A run given ``--reference FILE`` adds the rows
of ``FILE`` that it did not run itself, with their per-case scores, refiner details and learning curves,
and pairs every row of both by case (paired bootstrap CI, Wilcoxon p), which is sound only when both runs
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


def imported_rows(reference: dict, own_rows: set[str], cases: set[str], path: Path) -> dict:
    """The reference's rows that this run did not score itself: ``{"scores", "refiners",
    "learning_curves", "patch_size", "stage_seconds"}``, each keyed by row (stage times: those of
    the imported rows' stages). Every imported row must hold exactly ``cases``."""
    rows = [r for r in reference["per_case"] if r not in own_rows]
    for row in rows:
        if set(reference["per_case"][row]) != cases:
            raise InputError(f"{path}: row {row!r} holds other cases than this run")

    wanted = {f"{kind} {row}" for row in rows for kind in ("train", "train refiner", "refine")}

    def _stage_of(stage: str) -> bool:
        return stage.rsplit(" fold ", 1)[0] in wanted

    return {
        "scores": {r: reference["per_case"][r] for r in rows},
        "refiners": {r: d for r, d in reference.get("refiners", {}).items() if r in rows},
        "learning_curves": {r: c for r, c in reference.get("learning_curves", {}).items() if r in rows},
        "patch_size": {r: p for r, p in reference["settings"].get("patch_size", {}).items() if r in rows},
        "stage_seconds": {k: v for k, v in reference.get("stage_seconds", {}).items() if _stage_of(k)},
    }
