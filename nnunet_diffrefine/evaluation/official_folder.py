"""A prediction folder scored with the official BraTS protocol (:mod:`.official`): summary.json + CSV.

``summary.json`` follows nnU-Net's layout (``metric_per_case`` with ``reference_file``,
``prediction_file`` and ``metrics`` per label group; ``mean``; ``foreground_mean`` over the groups)
with the official columns as metric names; the CSV is what ``brats-parse-metrics seg`` writes
(``subject_id`` = the reference file name, 15 columns per group, 27 for ``mets``, then ``mean``,
``std``, ``median`` rows; ``brats-parse-metrics mets`` for ``mets``). A missing prediction gets the official parser's row (373 mm for every HD95, 0 elsewhere).
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_diffrefine.data.challenges import convention_of_dataset
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.folder import reference_files
from nnunet_diffrefine.evaluation.official import (
    HD95_MISSING_MM,
    OFFICIAL_GROUPS,
    columns_of,
    mean_official,
    score_case_official,
)
from nnunet_diffrefine.utils.io import atomic_output_file, write_json


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


def _score_files(reference: str, prediction: str, config: str) -> dict[str, dict[str, float]]:
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


def evaluate_folder_official(
    gt_folder: str | os.PathLike,
    pred_folder: str | os.PathLike,
    dataset_json: dict,
    output_file: str | os.PathLike | None = None,
    config: str | None = None,
    num_processes: int = 1,
    progress: bool = True,
    cases: list[str] | None = None,
) -> dict:
    """Score every reference file of ``gt_folder`` against the same name in ``pred_folder`` with the
    official protocol (``config``: default the dataset's convention's); writes summary.json and the CSV.
    ``cases``: only these case ids (default: every reference file)."""
    config = config or default_official_config(dataset_json)
    if config not in OFFICIAL_GROUPS:
        raise InputError(
            f"unknown official configuration {config!r}; choose one of {', '.join(OFFICIAL_GROUPS)}"
        )
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    for folder, what in ((gt_folder, "reference"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {what} folder does not exist")
    ending = dataset_json.get("file_ending") or ".nii.gz"
    names = reference_files(gt_folder, ending, cases)
    output_file = Path(output_file) if output_file is not None else pred_folder / "summary.json"
    if output_file.suffix != ".json":
        raise InputError(f"{output_file}: the output file must end with .json")
    jobs = [(str(gt_folder / n), str(pred_folder / n)) for n in names]
    per_case = dict(zip(names, _run(jobs, config, int(num_processes), progress)))
    mean = mean_official(per_case)
    missing = [n for n in names if not (pred_folder / n).is_file()]
    summary = {
        "protocol": "brats-official",
        "official_config": config,
        "metric_per_case": [
            {
                "reference_file": str(gt_folder / n),
                "prediction_file": str(pred_folder / n),
                "metrics": per_case[n],
            }
            for n in names
        ],
        "mean": mean,
        "foreground_mean": {c: _nanmean([mean[g][c] for g in mean]) for c in columns_of(config)},
        "missing_predictions": [n[: -len(ending)] for n in missing],
    }
    write_json(summary, output_file)
    in_parser_order = [n for n in names if n not in missing] + missing  # it lists missing subjects last
    write_official_csv({n: per_case[n] for n in in_parser_order}, output_file.with_suffix(".csv"))
    return summary


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def write_official_csv(per_case: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """The official parser's CSV: one row per case (missing predictions last, as the parser lists them),
    then the mean, std (ddof 1) and median rows."""
    first = next(iter(per_case.values()))
    header = ["subject_id"] + [f"{c}_{g}" for g in first for c in first[g]]
    rows = [[name] + [per_case[name][g][c] for g in first for c in first[g]] for name in per_case]
    table = np.array([row[1:] for row in rows], dtype=np.float64)
    stats = []
    for label, reduce in (("mean", _column_mean), ("std", _column_std), ("median", _column_median)):
        stats.append([label] + [reduce(table[:, j]) for j in range(table.shape[1])])
    with atomic_output_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows + stats:
            writer.writerow(
                [row[0]] + ["" if isinstance(v, float) and math.isnan(v) else repr(float(v)) for v in row[1:]]
            )


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


def _run(jobs: list[tuple[str, str]], config: str, num_processes: int, progress: bool) -> list:
    """:func:`_score_files` for every job, in order, here or in ``num_processes`` spawned workers."""
    bar = tqdm(
        total=len(jobs), desc="evaluating cases (official protocol)", unit="case", disable=not progress
    )
    try:
        if num_processes <= 1 or len(jobs) == 1:
            results = []
            for reference, prediction in jobs:
                results.append(_score_files(reference, prediction, config))
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(num_processes, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(_score_files, r, p, config) for r, p in jobs]
            results = []
            for future in futures:
                results.append(future.result())
                bar.update()
            return results
    finally:
        bar.close()
