"""The fair refinement protocol: K-fold splits, and checks that a benchmark kept it.

What the refinement benchmark promises, and :func:`protocol_problems` checks from the files it wrote:

- every row is trained on the same labelled cases (the K folds of one split; ``splits_final.json``);
- a refiner trains on out-of-fold probabilities only: each of its cases is a training case (never a
  test case) whose probabilities come from the validation folder of the one fold that did not train
  on it;
- the test split is never trained on, by a base model or a refiner;
- with cross-validated stacking (no test split), the refiner applied to a fold trains on the other
  folds' cases only (:func:`stacking_problems`);
- every row gets the same post-processing (or none does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import write_json


def kfold_splits(cases: list[str], num_folds: int) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json`` layout: fold ``k`` validates on every ``num_folds``-th case of the
    sorted ids, starting at ``k``, and trains on the others (deterministic, seed-free)."""
    cases = sorted(cases)
    if not 2 <= num_folds <= len(cases):
        raise InputError(f"{num_folds} folds need at least {num_folds} cases (got {len(cases)}) and 2 folds")
    return [
        {"train": [c for i, c in enumerate(cases) if i % num_folds != k], "val": cases[k::num_folds]}
        for k in range(num_folds)
    ]


def write_splits(preprocessed_dataset: str | os.PathLike, splits: list[dict]) -> Path:
    """Write ``splits_final.json``; an existing, different one is refused (its models used it)."""
    path = Path(preprocessed_dataset) / "splits_final.json"
    if path.is_file():
        if json.loads(path.read_text()) != splits:
            raise InputError(f"{path} holds other splits; use another work folder or remove it")
        return path
    write_json(splits, path)
    return path


def _fold_of(case: str, splits: list[dict]) -> int | None:
    folds = [k for k, s in enumerate(splits) if case in s["val"]]
    return folds[0] if len(folds) == 1 else None


def refiner_problems(config: dict, splits: list[dict], test_cases: set[str], where: str) -> list[str]:
    """What breaks the protocol in one ``refiner.json``: cases that are test cases, unknown, or whose
    out-of-fold probabilities do not come from the one fold that validated on them."""
    problems = []
    seen = list(config.get("training_cases", [])) + list(config.get("validation_cases", []))
    training = {c for s in splits for c in s["train"] + s["val"]}
    for case in seen:
        if case in test_cases:
            problems.append(f"{where}: test case {case} among the refiner's cases")
        elif case not in training:
            problems.append(f"{where}: {case} is not a training case")
    sources = [Path(s) for s in config.get("out_of_fold_sources", [])]
    for case in seen:
        fold = _fold_of(case, splits)
        holders = [s for s in sources if (s / f"{case}.npz").is_file()]
        if fold is None or len(holders) != 1 or holders[0].parent.name != f"fold_{fold}":
            problems.append(f"{where}: {case} has no out-of-fold probabilities from fold {fold} alone")
    if set(seen) != training:
        problems.append(f"{where}: the refiner saw {len(set(seen))} of the {len(training)} training cases")
    return problems


def protocol_problems(
    splits: list[dict],
    test_cases: set[str],
    refiner_configs: dict[str, dict],
    postprocessing: dict[str, object],
) -> list[str]:
    """Every break of the protocol (see the module docstring); an empty list when it was kept.

    ``refiner_configs``: ``{row: refiner.json}``; ``postprocessing``: ``{row: what was applied}``."""
    problems = []
    training = [set(s["train"]) | set(s["val"]) for s in splits]
    if any(t != training[0] for t in training) or any(set(s["train"]) & set(s["val"]) for s in splits):
        problems.append("the folds do not partition one set of training cases")
    if training and training[0] & test_cases:
        problems.append(f"test cases in the training folds: {sorted(training[0] & test_cases)[:5]}")
    for row, config in refiner_configs.items():
        problems += refiner_problems(config, splits, test_cases, row)
    if len({json.dumps(v, sort_keys=True) for v in postprocessing.values()}) > 1:
        problems.append(f"the rows were post-processed differently: {postprocessing}")
    return problems


def stacking_problems(seen: list[str], splits: list[dict], fold: int, where: str) -> list[str]:
    """What breaks cross-validated stacking for the refiner applied to fold ``fold``'s cases: it must
    have trained (and early-stopped) on exactly the cases of the other folds, never on its own."""
    own = set(splits[fold]["val"])
    others = {c for k, s in enumerate(splits) if k != fold for c in s["val"]}
    problems = [f"{where}: the refiner trained on {c}, a case it refines" for c in sorted(set(seen) & own)]
    unknown = sorted(set(seen) - own - others)
    if unknown:
        problems.append(f"{where}: the refiner saw cases of no fold: {', '.join(unknown[:5])}")
    missing = sorted(others - set(seen))
    if missing:
        problems.append(f"{where}: the refiner did not see the other folds' cases {', '.join(missing[:5])}")
    return problems
