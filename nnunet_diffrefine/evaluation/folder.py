"""Evaluate a folder of predictions against a folder of references, like ``nnUNetv2_evaluate_folder``.

Every reference file ``GT_FOLDER/CASE<file_ending>`` is scored against ``PRED_FOLDER/CASE<file_ending>``
per region (region-based dataset.json: WT/TC/ET) or per label, with nnU-Net's ``LabelManager``.
A missing prediction is scored as an empty one and listed; prediction files without a reference
are ignored (and counted in the output). nnU-Net and MONAI are imported here, in the parent process
only: worker processes (spawned) import numpy, scipy, SimpleITK and cc3d.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_diffrefine.data.challenges import convention_of_dataset, region_display_names
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.case import evaluate_case
from nnunet_diffrefine.evaluation.conventions import (
    BRATS_HD95_PENALTY_MM,
    EmptyConvention,
    check_empty_convention,
    check_penalty,
)
from nnunet_diffrefine.evaluation.lesionwise import BRATS_LESION_PARAMS, LesionWiseParams
from nnunet_diffrefine.evaluation.overlap import Region
from nnunet_diffrefine.evaluation.summary import mean_metrics, write_summary_csv, write_summary_json
from nnunet_diffrefine.evaluation.surface import neighbour_code_normals, set_neighbour_code_normals


def load_dataset_json(dataset_json: str | os.PathLike | dict) -> dict:
    """dataset.json as a dict (a dict is passed through); :class:`InputError` if unreadable."""
    if isinstance(dataset_json, dict):
        return dataset_json
    try:
        with open(dataset_json) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{dataset_json}: cannot read dataset.json ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{dataset_json}: dataset.json must hold a JSON object")
    return data


def dataset_regions(dataset_json: dict) -> tuple[list[Region], dict[Region, str], list[int]]:
    """What to evaluate, from dataset.json ``labels`` through nnU-Net's ``LabelManager``.

    Returns the foreground regions (region-based datasets, tuples) or labels (ints) in nnU-Net's order,
    a display name for each (the BraTS short name of a region, :func:`region_display_names`, else the
    dataset.json name) and every
    label value a file may hold.
    """
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = dataset_json.get("labels")
    if not isinstance(labels, dict):
        raise InputError("dataset.json has no 'labels' mapping")
    if "ignore" in labels:
        raise InputError("dataset.json declares an ignore label, which this evaluation does not support")
    try:
        manager = LabelManager(labels, dataset_json.get("regions_class_order"))
    except (AssertionError, RuntimeError, ValueError, TypeError) as e:
        raise InputError(f"dataset.json labels are not valid for nnU-Net: {e}") from None
    found = manager.foreground_regions if manager.has_regions else manager.foreground_labels
    regions: list[Region] = [int(r) if np.isscalar(r) else tuple(int(v) for v in r) for r in found]

    names: dict[Region, str] = {}
    display = region_display_names(dataset_json) if manager.has_regions else {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            key: Region = tuple(int(v) for v in value)
            names[key] = display.get(name, name)
        else:
            names[int(value)] = display.get(name, name)
    region_names = {r: names.get(r, str(r)) for r in regions}
    return regions, region_names, [int(v) for v in manager.all_labels]


def dataset_lesion_params(dataset_json: dict) -> LesionWiseParams:
    """The BraTS 2023 lesion-wise parameters of the convention dataset.json declares (``brats_convention``:
    dilation 3 / 50 mm³ for GLI, SSA, PED; 1 / 50 for MEN; 1 / 2 for MET), else the GLI ones."""
    convention = convention_of_dataset(dataset_json)
    if convention is None:
        return BRATS_LESION_PARAMS
    return LesionWiseParams(
        dilation=convention.lesion_dilation,
        connectivity=BRATS_LESION_PARAMS.connectivity,
        min_volume_mm3=convention.lesion_min_volume_mm3,
    )


def evaluate_folder(
    gt_folder: str | os.PathLike,
    pred_folder: str | os.PathLike,
    dataset_json: str | os.PathLike | dict,
    output_file: str | os.PathLike | None = None,
    num_processes: int = 1,
    empty_convention: EmptyConvention = "brats",
    lesion_params: LesionWiseParams | None = None,
    hd95_penalty: float = BRATS_HD95_PENALTY_MM,
    progress: bool = True,
    cases: Sequence[str] | None = None,
) -> dict:
    """Score every case of ``gt_folder`` and write summary.json and summary.csv.

    ``output_file`` defaults to ``pred_folder/summary.json`` (nnU-Net's default); the CSV goes next to
    it with the ending ``.csv``. Empty masks follow ``empty_convention`` ("brats": both empty -> Dice 1,
    HD95 0; one empty -> Dice 0, HD95 ``hd95_penalty``; "nan": nnU-Net's NaNs). Returns the summary
    with region objects as keys, like nnU-Net's ``compute_metrics_on_folder``. ``cases``: score only
    these case ids (e.g. one cross-validation fold's validation cases); default every reference file.
    ``lesion_params``: default :func:`dataset_lesion_params` (the sub-challenge's BraTS 2023 ones).
    """
    check_empty_convention(empty_convention)
    hd95_penalty = check_penalty(hd95_penalty)
    if int(num_processes) < 1:
        raise InputError(f"the number of processes must be >= 1, got {num_processes}")
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    for folder, what in ((gt_folder, "reference"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {what} folder does not exist")
    dataset = load_dataset_json(dataset_json)
    file_ending = dataset.get("file_ending")
    if not isinstance(file_ending, str) or not file_ending:
        raise InputError("dataset.json has no 'file_ending'")
    regions, region_names, known_labels = dataset_regions(dataset)
    lesion_params = lesion_params or dataset_lesion_params(dataset)
    output_file = Path(output_file) if output_file is not None else pred_folder / "summary.json"
    if output_file.suffix != ".json":
        raise InputError(f"{output_file}: the output file must end with .json")

    names = reference_files(gt_folder, file_ending, cases)
    predicted = set(_label_files(pred_folder, file_ending))
    missing = [name for name in names if name not in predicted]
    if len(missing) == len(names):
        raise InputError(f"{pred_folder}: none of the {len(names)} reference cases has a prediction")
    case_ids = [name[: -len(file_ending)] for name in names]
    jobs = [(str(gt_folder / name), str(pred_folder / name)) for name in names]
    options = {
        "regions": regions,
        "known_labels": known_labels,
        "empty_convention": empty_convention,
        "lesion_params": lesion_params,
        "hd95_penalty": hd95_penalty,
        "missing_ok": True,
    }
    metric_per_case = _run(jobs, options, int(num_processes), progress)

    means, foreground_mean = mean_metrics(metric_per_case, regions)
    missing_ids = [name[: -len(file_ending)] for name in missing]
    summary = {
        "metric_per_case": metric_per_case,
        "mean": means,
        "foreground_mean": foreground_mean,
        "missing_predictions": missing_ids,
        "settings": {
            "empty_convention": empty_convention,
            "hd95_penalty_mm": hd95_penalty,
            "lesion_dilation": int(lesion_params.dilation),
            "lesion_dilation_connectivity": int(lesion_params.connectivity),
            "lesion_min_volume_mm3": float(lesion_params.min_volume_mm3),
            "file_ending": file_ending,
            "region_names": {str(r): region_names[r] for r in regions},
            "num_cases": len(names),
            "predictions_without_reference": len(predicted - set(names)),
        },
    }
    write_summary_json(summary, output_file)
    write_summary_csv(case_ids, metric_per_case, regions, region_names, output_file.with_suffix(".csv"))
    if missing_ids:
        print(
            f"{len(missing_ids)} of {len(names)} predictions missing, scored as empty: {', '.join(missing_ids)}"
        )
    return summary


def reference_files(gt_folder: Path, file_ending: str, cases: Sequence[str] | None = None) -> list[str]:
    """Sorted names of the reference files to score: all of ``gt_folder``'s, or those of ``cases``
    (case ids); :class:`InputError` for a case without a reference file, or for none at all."""
    names = _label_files(gt_folder, file_ending)
    if cases is not None:
        wanted = {f"{c}{file_ending}" for c in cases}
        unknown = sorted(wanted - set(names))
        if unknown:
            raise InputError(f"{gt_folder}: no reference file for {', '.join(unknown[:5])}")
        names = [n for n in names if n in wanted]
    if not names:
        raise InputError(f"{gt_folder}: no reference files ending in {file_ending}")
    return names


def _label_files(folder: Path, file_ending: str) -> list[str]:
    """Sorted names of the files in ``folder`` ending in ``file_ending`` (hidden files left out)."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.endswith(file_ending) and not p.name.startswith(".") and p.is_file()
    )


def _run(jobs: list[tuple[str, str]], options: dict, num_processes: int, progress: bool) -> list[dict]:
    """``evaluate_case`` for every job, in order, in this process or in spawned workers."""
    normals = neighbour_code_normals()  # loaded from MONAI here, handed to the workers
    bar = tqdm(total=len(jobs), desc="evaluating cases", unit="case", disable=not progress)
    results: list[dict] = []
    try:
        if num_processes <= 1 or len(jobs) == 1:
            for reference, prediction in jobs:
                results.append(evaluate_case(reference, prediction, **options))
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(num_processes, len(jobs)),
            mp_context=context,
            initializer=set_neighbour_code_normals,
            initargs=(normals,),
        ) as pool:
            futures = [
                pool.submit(evaluate_case, reference, prediction, **options) for reference, prediction in jobs
            ]
            try:
                for future in futures:
                    results.append(future.result())
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results
    finally:
        bar.close()
