"""Evaluate a folder of predictions against a folder of references, like ``nnUNetv2_evaluate_folder``.

Every reference file ``GT_FOLDER/CASE<file_ending>`` is scored against ``PRED_FOLDER/CASE<file_ending>``
per region (region-based dataset.json: WT/TC/ET) or per label, with nnU-Net's ``LabelManager``.
A missing prediction is scored as an empty one and listed; prediction files without a reference
are ignored (and counted in the output). nnU-Net and MONAI are imported here, in the parent process
only: worker processes (spawned) import numpy, scipy, SimpleITK and cc3d.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.conventions import BRATS_HD95_PENALTY_MM, EmptyConvention
from nnunet_diffrefine.evaluation.dataset import dataset_lesion_params, dataset_regions, load_dataset_json
from nnunet_diffrefine.evaluation.lesionwise import LesionWiseParams
from nnunet_diffrefine.evaluation.protocols import (
    Brats2023Protocol,
    EvaluationProtocol,
    FolderScores,
    OfficialProtocol,
)
from nnunet_diffrefine.evaluation.summary import write_csv_rows

__all__ = [  # the dataset.json readers are used from here too
    "dataset_lesion_params",
    "dataset_regions",
    "evaluate_folder",
    "evaluate_folder_official",
    "evaluate_with",
    "load_dataset_json",
    "reference_files",
]


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
    """Score every case of ``gt_folder`` with the BraTS 2023 protocol
    (:class:`~.protocols.Brats2023Protocol`, whose arguments these are) and write summary.json and
    summary.csv; see :func:`evaluate_with`. Returns the summary with region objects as keys, like
    nnU-Net's ``compute_metrics_on_folder``."""
    protocol = Brats2023Protocol(
        load_dataset_json(dataset_json), empty_convention, lesion_params, hd95_penalty
    )
    return evaluate_with(protocol, gt_folder, pred_folder, output_file, num_processes, progress, cases)


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
    """Score every case of ``gt_folder`` with the official BraTS protocol (``config``: default the
    dataset's convention's; :class:`~.protocols.OfficialProtocol`); writes summary.json and the official
    parser's CSV (see :func:`evaluate_with`)."""
    protocol = OfficialProtocol(dataset_json, config)
    return evaluate_with(protocol, gt_folder, pred_folder, output_file, num_processes, progress, cases)


def evaluate_with(
    protocol: EvaluationProtocol,
    gt_folder: str | os.PathLike,
    pred_folder: str | os.PathLike,
    output_file: str | os.PathLike | None = None,
    num_processes: int = 1,
    progress: bool = True,
    cases: Sequence[str] | None = None,
) -> dict:
    """The one case loop: every reference file ``gt_folder/CASE<ending>`` scored against the same name in
    ``pred_folder`` by ``protocol``, in this process or ``num_processes`` spawned workers; writes the
    protocol's summary.json to ``output_file`` (default ``pred_folder/summary.json``, nnU-Net's) and its
    CSV beside it (``.csv``). A missing prediction is scored as the protocol scores it and listed;
    prediction files without a reference are counted. ``cases``: only these case ids (e.g. one fold's
    validation cases); default every reference file."""
    if int(num_processes) < 1:
        raise InputError(f"the number of processes must be >= 1, got {num_processes}")
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    for folder, what in ((gt_folder, "reference"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {what} folder does not exist")
    file_ending = protocol.file_ending()
    output_file = Path(output_file) if output_file is not None else pred_folder / "summary.json"
    if output_file.suffix != ".json":
        raise InputError(f"{output_file}: the output file must end with .json")

    names = reference_files(gt_folder, file_ending, cases)
    predicted = set(_label_files(pred_folder, file_ending))
    missing = [name for name in names if name not in predicted]
    if protocol.needs_a_prediction and len(missing) == len(names):
        raise InputError(f"{pred_folder}: none of the {len(names)} reference cases has a prediction")
    case_ids = [name[: -len(file_ending)] for name in names]
    jobs = [(str(gt_folder / name), str(pred_folder / name)) for name in names]
    per_case = _run(protocol, jobs, int(num_processes), progress)
    missing_ids = [name[: -len(file_ending)] for name in missing]
    scores = FolderScores(
        [r for r, _ in jobs], [p for _, p in jobs], per_case, missing_ids, len(predicted - set(names))
    )
    summary = protocol.summarize(scores)
    protocol.write_summary(summary, output_file)
    write_csv_rows(*protocol.csv_table(case_ids, summary), output_file.with_suffix(".csv"))
    if missing_ids:
        print(
            f"{len(missing_ids)} of {len(names)} predictions missing, scored as {protocol.missing_scored_as}: "
            f"{', '.join(missing_ids)}"
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


def _run(
    protocol: EvaluationProtocol, jobs: list[tuple[str, str]], num_processes: int, progress: bool
) -> list:
    """The protocol's case task for every ``(reference, prediction)`` job, in order, in this process or in
    spawned workers (one pool; each worker set up by the protocol's initializer)."""
    task, options = protocol.case_task()
    initializer = protocol.worker_initializer()
    bar = tqdm(total=len(jobs), desc=protocol.progress_label, unit="case", disable=not progress)
    results: list = []
    try:
        if num_processes <= 1 or len(jobs) == 1:
            for reference, prediction in jobs:
                results.append(task(reference, prediction, **options))
                bar.update()
            return results
        init, init_args = initializer if initializer is not None else (None, ())
        with ProcessPoolExecutor(
            max_workers=min(num_processes, len(jobs)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init,
            initargs=init_args,
        ) as pool:
            futures = [pool.submit(task, reference, prediction, **options) for reference, prediction in jobs]
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
