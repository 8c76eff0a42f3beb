"""The files of the official BraTS protocol (:mod:`.official`): one case scored from its files, the
default configuration of a dataset and the official parser's CSV (the case loop is
:func:`.folder.evaluate_with` with :class:`~.protocols.OfficialProtocol`).

``summary.json`` follows nnU-Net's layout (``metric_per_case`` with ``reference_file``,
``prediction_file`` and ``metrics`` per label group; ``mean``; ``foreground_mean`` over the groups)
with the official columns as metric names; the CSV is what ``brats-parse-metrics seg`` writes
(``subject_id`` = the reference file name, 15 columns per group, 27 for ``mets``, then ``mean``,
``std``, ``median`` rows; ``brats-parse-metrics mets`` for ``mets``). A missing prediction gets the official parser's row (373 mm for every HD95, 0 elsewhere).
"""

from __future__ import annotations

import math
import os

import numpy as np
import SimpleITK as sitk

from nnunet_diffrefine.data.challenges import convention_of_dataset
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.official import (
    HD95_MISSING_MM,
    OFFICIAL_GROUPS,
    columns_of,
    score_case_official,
)


def default_official_config(dataset_json: dict) -> str:
    """The official configuration of the convention dataset.json declares; :class:`InputError` without one."""
    convention = convention_of_dataset(dataset_json)
    if convention is None or convention.official_config is None:
        raise InputError(
            "dataset.json declares no BraTS convention (brats_convention), so the official configuration "
            f"is unknown; pass --official-config ({', '.join(OFFICIAL_GROUPS)})"
        )
    return convention.official_config


def _missing_row(config: str) -> dict[str, float]:
    return {c: HD95_MISSING_MM if "hd95" in c and "std" not in c else 0.0 for c in columns_of(config)}


def score_files(reference: str, prediction: str, config: str) -> dict[str, dict[str, float]]:
    """Worker: one case from its files (the geometry must match, as the official scorer requires)."""
    if not os.path.isfile(prediction):
        return {group: _missing_row(config) for group, _, _ in OFFICIAL_GROUPS[config]}
    images = []
    for path in (reference, prediction):
        try:
            images.append(sitk.ReadImage(path))
        except RuntimeError as e:
            raise InputError(
                f"{path}: cannot read the label file ({str(e).strip().splitlines()[-1]})"
            ) from None
    ref, pred = images
    if ref.GetSize() != pred.GetSize():
        raise InputError(f"{prediction}: size {pred.GetSize()} differs from the reference {ref.GetSize()}")
    for what, get in (("spacing", "GetSpacing"), ("origin", "GetOrigin"), ("direction", "GetDirection")):
        a, b = np.array(getattr(pred, get)()), np.array(getattr(ref, get)())
        if np.abs(a - b).sum() > 1e-5:  # the official scorer's check
            raise InputError(f"{prediction}: {what} {tuple(a)} differs from the reference {tuple(b)}")
    try:
        return score_case_official(
            sitk.GetArrayFromImage(pred), sitk.GetArrayFromImage(ref), ref.GetSpacing(), config
        )
    except InputError as e:
        raise InputError(f"{prediction}: {e}") from None


def official_csv_rows(per_case: dict[str, dict[str, dict[str, float]]]) -> tuple[list[str], list[list[str]]]:
    """The official parser's CSV as ``(header, rows)``: one row per case in the order given (the parser
    lists missing predictions last), then the mean, std (ddof 1) and median rows; values as ``repr``
    of the float, NaN as an empty field."""
    first = next(iter(per_case.values()))
    header = ["subject_id"] + [f"{c}_{g}" for g in first for c in first[g]]
    rows = [[name] + [per_case[name][g][c] for g in first for c in first[g]] for name in per_case]
    table = np.array([row[1:] for row in rows], dtype=np.float64)
    stats = []
    for label, reduce in (("mean", _column_mean), ("std", _column_std), ("median", _column_median)):
        stats.append([label] + [reduce(table[:, j]) for j in range(table.shape[1])])
    formatted = [
        [row[0]] + ["" if isinstance(v, float) and math.isnan(v) else repr(float(v)) for v in row[1:]]
        for row in rows + stats
    ]
    return header, formatted


def _column_mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def _column_std(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    with np.errstate(invalid="ignore"):  # an infinite value gives NaN, as pandas does
        return float(kept.std(ddof=1)) if kept.size > 1 else math.nan


def _column_median(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(np.median(kept)) if kept.size else math.nan
