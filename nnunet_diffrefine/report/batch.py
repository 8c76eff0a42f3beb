"""Reports for a folder of predictions: one sub-folder per case, optional worker processes.

Cases are the ``CASE.nii.gz`` files of the prediction folder (nnU-Net's output layout); their images
are ``CASE_0000.nii.gz`` .. ``CASE_0003.nii.gz`` (one per channel of the label convention; MEN-RT:
``CASE_0000.nii.gz`` only) in the images folder (nnU-Net's ``imagesTs``) and
their reference, if a reference folder is given, ``CASE.nii.gz`` there. Everything is located before
any work; cases whose folder already holds a finished report are skipped (a re-run resumes), other
existing folders are refused, and ``overwrite`` redoes every case. A case that fails (bad labels,
geometry) does not stop the others; ``reports.json`` in the output folder lists every case with its
source, LLM error, numbers of flagged and of contradicted statements (a contradicted reply is kept
only as a rejected draft), or error.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nnunet_diffrefine.data.brats import FILE_ENDING
from nnunet_diffrefine.data.challenges import DEFAULT_CONVENTION
from nnunet_diffrefine.errors import DiffRefineError, InputError
from nnunet_diffrefine.report.inputs import load_case
from nnunet_diffrefine.report.llm import LLMSettings
from nnunet_diffrefine.report.pipeline import check_output_folder, write_report
from nnunet_diffrefine.report.vocabulary import vocabulary
from nnunet_diffrefine.utils.io import OutputExistsError, write_json


@dataclass(frozen=True)
class CaseFiles:
    case_id: str
    segmentation: Path
    images: tuple[Path, ...]
    reference: Path | None


def find_cases(
    pred_folder: str | os.PathLike,
    images_folder: str | os.PathLike,
    reference_folder: str | os.PathLike | None = None,
    num_channels: int = 4,
) -> list[CaseFiles]:
    """Every case of ``pred_folder`` with its ``num_channels`` images; :class:`InputError` naming the
    first missing file."""
    pred, images = Path(pred_folder), Path(images_folder)
    for folder, what in ((pred, "prediction"), (images, "images")) + (
        ((Path(reference_folder), "reference"),) if reference_folder is not None else ()
    ):
        if not folder.is_dir():
            raise InputError(f"{folder}: {what} folder not found")
    files = sorted(p for p in pred.iterdir() if p.name.endswith(FILE_ENDING) and not p.name.startswith("."))
    if not files:
        raise InputError(f"{pred}: no {FILE_ENDING} predictions found")
    cases = []
    for seg in files:
        case_id = seg.name[: -len(FILE_ENDING)]
        channels = tuple(images / f"{case_id}_{c:04d}{FILE_ENDING}" for c in range(num_channels))
        for path in channels:
            if not path.is_file():
                raise InputError(f"{path}: image of case {case_id} not found")
        ref = None
        if reference_folder is not None:
            ref = Path(reference_folder) / seg.name
            if not ref.is_file():
                raise InputError(f"{ref}: reference of case {case_id} not found")
        cases.append(CaseFiles(case_id, seg, channels, ref))
    return cases


def _earlier_entries(out: Path) -> dict[str, dict[str, Any]]:
    """The entries of an earlier run's ``reports.json`` (finished cases are skipped on a re-run)."""
    import json

    try:
        return {
            e["case_id"]: e
            for e in json.loads((out / "reports.json").read_text())["cases"]
            if "error" not in e
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _progress(case_id: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        tqdm.write(f"nnunet-diffrefine report: {case_id}: {line}", file=sys.stderr)

    return say


def _one(job: tuple[CaseFiles, Path, LLMSettings | None, dict[str, Any]]) -> dict[str, Any]:
    files, folder, settings, options = job
    options = dict(options)
    progress = _progress(files.case_id) if options.pop("progress") else None
    convention = options.pop("convention")
    try:
        case = load_case(
            files.segmentation, files.images, files.reference, case_id=files.case_id, convention=convention
        )
        outcome = write_report(case, folder, settings, progress=progress, **options)
    except (DiffRefineError, OutputExistsError) as e:
        return {"case_id": files.case_id, "folder": folder.name, "error": str(e)}
    return {
        "case_id": files.case_id,
        "folder": folder.name,
        "source": outcome.source,
        "llm_error": outcome.llm_error,
        "flagged_statements": outcome.flagged,
        "contradicted_statements": outcome.contradicted,
    }


def report_folder(
    pred_folder: str | os.PathLike,
    images_folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    reference_folder: str | os.PathLike | None = None,
    settings: LLMSettings | None = None,
    offline: bool = False,
    overwrite: bool = False,
    send_images: bool = True,
    num_processes: int = 1,
    progress: bool = True,
    send_case_id: bool = False,
    convention: str = DEFAULT_CONVENTION,
) -> list[dict[str, Any]]:
    """Write ``out_dir/CASE/`` for every case and ``out_dir/reports.json``; returns the per-case entries.
    ``convention``: the label convention of the predictions (the dataset.json's).
    Each endpoint request gets the case's pseudonym unless ``send_case_id``; with ``progress`` a bar
    and, while waiting for the endpoint, progress lines. Raises :class:`DiffRefineError` after the
    others are written when a case failed."""
    out = Path(out_dir)
    channels = len(vocabulary(convention).channels)
    cases = find_cases(pred_folder, images_folder, reference_folder, channels)
    earlier = _earlier_entries(out) if not overwrite else {}
    done = [f for f in cases if not overwrite and (out / f.case_id / "report.json").is_file()]
    for files in cases:
        if files not in done:
            check_output_folder(out / files.case_id, overwrite)
    skipped = [earlier.get(f.case_id, {"case_id": f.case_id, "folder": f.case_id}) for f in done]
    cases = [f for f in cases if f not in done]
    if done and progress:
        tqdm.write(
            f"nnunet-diffrefine report: {len(done)} case(s) already reported, skipped (--overwrite redoes them)",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "offline": offline,
        "overwrite": overwrite,
        "send_images": send_images,
        "send_case_id": send_case_id,
        "progress": progress,
        "convention": convention,
    }
    jobs = [(files, out / files.case_id, settings, options) for files in cases]
    results: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc="writing reports", unit="case", disable=not progress) as bar:
        if num_processes <= 1:
            for job in jobs:
                results.append(_one(job))
                bar.update()
        else:
            context = (
                multiprocessing.get_context("fork")
                if "fork" in multiprocessing.get_all_start_methods()
                else None
            )
            with ProcessPoolExecutor(max_workers=num_processes, mp_context=context) as pool:
                for result in pool.map(_one, jobs):
                    results.append(result)
                    bar.update()
    found = find_cases(pred_folder, images_folder, reference_folder, channels)
    order = {f.case_id: i for i, f in enumerate(found)}
    results = sorted(skipped + results, key=lambda r: order.get(r["case_id"], len(order)))
    write_json({"cases": results}, out / "reports.json")
    failed = [r for r in results if "error" in r]
    if failed:
        raise DiffRefineError(
            f"{len(failed)} of {len(results)} reports failed (listed in {out / 'reports.json'}); first: {failed[0]['error']}"
        )
    return results
