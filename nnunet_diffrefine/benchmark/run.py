"""``run_benchmark``: every model's cross-validation or test-split predictions, evaluated alike.

- ``split="cv"``: each fold's ``validation/`` segmentations (written by nnU-Net's final validation) are
  scored against nnU-Net's ``gt_segmentations``; the same splits for every model (``splits_final.json``).
- ``split="test"``: each fold's model predicts the test images here, timed per case, and is scored
  against the test labels (default ``nnUNet_raw/DatasetXXX/imagesTs`` and ``labelsTs``).

A model given with ``+REFINER`` (test split only; several may follow each other) adds a row per
refiner for its refined predictions: each fold's predictions refined by that fold's refiner
(``nnunet-diffrefine refine``), whose seconds per case are the base prediction plus the refinement. Stock nnU-Net is always a row: when no ``nnUNetTrainer*`` model is named, ``nnUNetTrainer`` with
``nnUNetPlans`` is added (and must have been trained). Writes ``benchmark.md`` (the table),
``benchmark.csv``, ``benchmark_dice.png`` and ``benchmark.json`` into the output folder, plus each
fold's ``summary.json`` under ``evaluations/``. Predictions are kept under ``predictions/`` so an
interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from nnunet_diffrefine.benchmark.models import ModelSpec, fold_folder
from nnunet_diffrefine.benchmark.predict import case_files, predict_cases
from nnunet_diffrefine.benchmark.table import (
    FoldResult,
    ModelResult,
    csv_rows,
    dice_bar_chart,
    markdown_table,
)
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder
from nnunet_diffrefine.training.plans_presets import find_preprocessed_dataset
from nnunet_diffrefine.utils.io import OutputExistsError, atomic_output_file, write_json

PREFERRED_ORDER = ("TC", "WT", "ET")  # seed 000 Table 3


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _fold_result(summary: dict, fold: int, region_names: dict, measurements: dict | None) -> FoldResult:
    per_region = {
        region_names[r]: {k: float(v) for k, v in metrics.items()} for r, metrics in summary["mean"].items()
    }
    result = FoldResult(fold=fold, per_region=per_region)
    if measurements:
        values = list(measurements.values())
        result.seconds_per_case = float(sum(m.seconds for m in values) / len(values))
        result.peak_rss_mb = float(max(m.peak_rss_mb for m in values))
        gpu = [m.peak_gpu_mb for m in values if m.peak_gpu_mb is not None]
        result.peak_gpu_mb = float(max(gpu)) if gpu else None
    return result


def _refined_fold(
    model: ModelSpec,
    refiner: str,
    fold: int,
    fold_dir: Path,
    pred_dir: Path,
    images: Path,
    labels: Path,
    out: Path,
    dataset_json: dict,
    region_names: dict,
    base: dict,
    device: str,
    num_processes: int,
    progress: bool,
) -> FoldResult:
    """Refine one fold's test predictions with that fold's refiner and score them."""
    from nnunet_diffrefine.benchmark.resources import Measurement
    from nnunet_diffrefine.refine.run import refine_folder

    name = f"{model.name} + {refiner}"
    refined_dir = out / "predictions" / _slug(name) / f"fold_{fold}"
    refine_folder(
        pred_dir,
        refined_dir,
        fold_dir.parent,
        [fold],
        images,
        refiner=refiner,
        device=device,
        progress=progress,
    )
    timings = json.loads((refined_dir / "timings.json").read_text())
    combined = {
        c: Measurement(
            seconds=base[c].seconds + timings[c]["seconds"],
            peak_rss_mb=max(base[c].peak_rss_mb, timings[c]["peak_rss_mb"]),
            peak_gpu_mb=timings[c]["peak_gpu_mb"],
        )
        for c in base
    }
    summary = evaluate_folder(
        labels,
        refined_dir,
        dataset_json,
        out / "evaluations" / _slug(name) / f"fold_{fold}" / "summary.json",
        num_processes=num_processes,
        progress=progress,
        cases=list(base),
    )
    return _fold_result(summary, fold, region_names, combined)


def run_benchmark(
    dataset: str | int,
    models: list[ModelSpec],
    folds: list[int],
    split: str = "cv",
    images: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    device: str = "cpu",
    use_mirroring: bool = True,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Run the benchmark and return the output folder (see the module docstring)."""
    if split not in ("cv", "test"):
        raise InputError(f"split must be 'cv' or 'test', got {split!r}")
    if not models:
        raise InputError("name at least one model")
    results_root = os.environ.get("nnUNet_results")
    if not results_root:
        raise InputError("nnUNet_results is not set (see 'nnunet-diffrefine env')")
    pre = find_preprocessed_dataset(dataset)
    dataset_name = pre.name
    dataset_json = json.loads((pre / "dataset.json").read_text())
    regions, region_names, _ = dataset_regions(dataset_json)
    names = [region_names[r] for r in regions]
    ordered = [n for n in PREFERRED_ORDER if n in names] + [n for n in names if n not in PREFERRED_ORDER]
    if not any(m.is_stock for m in models):
        models = [ModelSpec("nnUNetTrainer", "nnUNetPlans", models[0].configuration), *models]
    if split == "cv" and any(m.refiners for m in models):
        raise InputError(
            "refined rows need --split test: the refiners were trained on the cross-validation predictions"
        )
    if len({m.name for m in models}) != len(models):
        raise InputError("two models have the same name; give them labels (LABEL=TRAINER:PLANS)")
    for m in models:  # fail before any work when something was not trained
        for f in folds:
            fold_folder(m, results_root, dataset_name, f)

    out = Path(output) if output else Path(results_root) / dataset_name / f"benchmark_{split}"
    if (out / "benchmark.md").exists() and not overwrite:
        raise OutputExistsError(
            f"{out / 'benchmark.md'} already exists; pass --overwrite or choose another -o"
        )
    out.mkdir(parents=True, exist_ok=True)
    file_ending = dataset_json["file_ending"]
    if split == "test":
        raw = Path(os.environ.get("nnUNet_raw", "")) / dataset_name
        images = Path(images) if images else raw / "imagesTs"
        labels = Path(labels) if labels else raw / "labelsTs"
        cases = case_files(images, file_ending, len(dataset_json["channel_names"]))
        if not Path(labels).is_dir():
            raise InputError(f"{labels}: the test labels folder does not exist (pass --labels)")

    results: list[ModelResult] = []
    for m in models:
        model_result = ModelResult(m.name)
        refined_results = [ModelResult(f"{m.name} + {r}") for r in m.refiners]
        for f in folds:
            fold_dir = fold_folder(m, results_root, dataset_name, f)
            summary_file = out / "evaluations" / _slug(m.name) / f"fold_{f}" / "summary.json"
            measurements = None
            if split == "cv":
                pred_dir = fold_dir / "validation"
                if not pred_dir.is_dir():
                    raise InputError(
                        f"{m.name}: {pred_dir} does not exist (nnU-Net's final validation did not run)"
                    )
                val_cases = sorted(p.name[: -len(file_ending)] for p in pred_dir.glob(f"*{file_ending}"))
                summary = evaluate_folder(
                    pre / "gt_segmentations",
                    pred_dir,
                    dataset_json,
                    summary_file,
                    num_processes=num_processes,
                    progress=progress,
                    cases=val_cases,
                )
            else:
                pred_dir = out / "predictions" / _slug(m.name) / f"fold_{f}"
                measurements = predict_cases(
                    fold_dir.parent,
                    f,
                    cases,
                    pred_dir,
                    device,
                    use_mirroring,
                    save_probabilities=bool(m.refiners),
                    progress=progress,
                )
                summary = evaluate_folder(
                    labels,
                    pred_dir,
                    dataset_json,
                    summary_file,
                    num_processes=num_processes,
                    progress=progress,
                    cases=list(cases),
                )
                for refiner, refined_result in zip(m.refiners, refined_results):
                    refined_result.folds.append(
                        _refined_fold(
                            m,
                            refiner,
                            f,
                            fold_dir,
                            pred_dir,
                            images,
                            labels,
                            out,
                            dataset_json,
                            region_names,
                            measurements,
                            device,
                            num_processes,
                            progress,
                        )
                    )
            model_result.folds.append(_fold_result(summary, f, region_names, measurements))
        results.append(model_result)
        results.extend(refined_results)

    title = f"{dataset_name}: {'cross-validation' if split == 'cv' else 'test split'}, folds {', '.join(map(str, folds))}"
    with atomic_output_file(out / "benchmark.csv") as tmp:
        tmp.write_text(csv_rows(results, ordered))
    dice_bar_chart(results, ordered, out / "benchmark_dice.png", title)
    write_json(
        {
            "dataset": dataset_name,
            "split": split,
            "folds": folds,
            "regions": ordered,
            "models": [{"name": r.name, "folds": [vars(f) for f in r.folds]} for r in results],
        },
        out / "benchmark.json",
    )
    with atomic_output_file(out / "benchmark.md") as tmp:
        tmp.write_text(f"# Benchmark: {title}\n\n" + markdown_table(results, ordered))
    return out
