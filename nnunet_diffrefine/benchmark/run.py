"""``run_benchmark``: every model's cross-validation or test-split predictions, evaluated alike.

- ``split="cv"``: each fold's ``validation/`` segmentations (written by nnU-Net's final validation) are
  scored against nnU-Net's ``gt_segmentations``; the same splits for every model (``splits_final.json``).
- ``split="test"``: each fold's model predicts the test images here, timed per case, and is scored
  against the test labels (default ``nnUNet_raw/DatasetXXX/imagesTs`` and ``labelsTs``).

A model given with ``+REFINER`` (test split only; several may follow each other) adds a row per
refiner for its refined predictions: each fold's predictions refined by that fold's refiner
(``nnunet-diffrefine refine``, without its post-processing: no row is post-processed), whose seconds
per case are the base prediction plus the refinement.
Stock nnU-Net is always a row: when no ``nnUNetTrainer*`` model is named, ``nnUNetTrainer`` with
``nnUNetPlans`` is added (and must have been trained). Writes ``benchmark.md`` (the table),
``benchmark.csv``, ``benchmark_dice.png`` and ``benchmark.json`` into the output folder, plus each
fold's ``summary.json`` under ``evaluations/``. Predictions are kept under ``predictions/`` so an
interrupted run resumes. Every row is scored by one evaluation protocol
(:mod:`nnunet_diffrefine.evaluation.protocols`, by name or as an object): ``"brats-2023"`` (default)
or ``"brats-official"`` (the official BraTS scorer: its label groups are the columns, Dice / HD95 /
NSD are the global ones, plus the matched lesions' DSC and the lesion F1); the protocol supplies the
table's columns.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
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
from nnunet_diffrefine.evaluation.folder import evaluate_with
from nnunet_diffrefine.evaluation.protocols import EvaluationProtocol, make_protocol
from nnunet_diffrefine.utils.io import OutputExistsError, atomic_output_file, write_json
from nnunet_diffrefine.utils.resources import Measurement
from nnunet_diffrefine.workspace.folders import NnUNetFolders

PREFERRED_ORDER = ("TC", "WT", "ET")  # Ke et al. Table 3


def refined_row(model: ModelSpec, refiner: str) -> str:
    """``MODEL + LABEL``: the row of ``model``'s predictions refined by ``refiner`` (its table label)."""
    from nnunet_diffrefine.refine.registry import refiner_class

    return f"{model.name} + {refiner_class(refiner).label or refiner}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


@dataclass
class BenchmarkSetup:
    """What every row of one benchmark shares: the dataset, the split, the output folder, the settings."""

    dataset_name: str
    preprocessed: Path
    dataset_json: dict
    regions: list[str]
    results_root: str
    split: str
    out: Path
    protocol: EvaluationProtocol
    device: str = "cpu"
    use_mirroring: bool = True
    num_processes: int = 1
    progress: bool = True
    images: Path | None = None
    labels: Path | None = None
    cases: dict | None = None

    def evaluation_file(self, row: str, fold: int) -> Path:
        return self.out / "evaluations" / _slug(row) / f"fold_{fold}" / "summary.json"

    def prediction_folder(self, row: str, fold: int) -> Path:
        return self.out / "predictions" / _slug(row) / f"fold_{fold}"

    def evaluate(self, reference: Path, predictions: Path, row: str, fold: int, cases: list[str]) -> dict:
        """``{region name: {metric: mean}}`` of one row's fold, scored by the protocol (files kept)."""
        summary = evaluate_with(
            self.protocol,
            reference,
            predictions,
            self.evaluation_file(row, fold),
            num_processes=self.num_processes,
            progress=self.progress,
            cases=cases,
        )
        return self.protocol.benchmark_means(summary)


def _fold_result(per_region: dict, fold: int, measurements: dict | None) -> FoldResult:
    result = FoldResult(fold=fold, per_region=per_region)
    if measurements:
        values = list(measurements.values())
        result.seconds_per_case = float(sum(m.seconds for m in values) / len(values))
        result.peak_rss_mb = float(max(m.peak_rss_mb for m in values))
        gpu = [m.peak_gpu_mb for m in values if m.peak_gpu_mb is not None]
        result.peak_gpu_mb = float(max(gpu)) if gpu else None
    return result


def _check_models(models: list[ModelSpec], folds: list[int], split: str, results_root: str, dataset: str):
    """Stock nnU-Net added when missing; every model trained for every fold (checked before any work)."""
    if not models:
        raise InputError("name at least one model")
    if not any(m.is_stock for m in models):
        models = [ModelSpec("nnUNetTrainer", "nnUNetPlans", models[0].configuration), *models]
    if split == "cv" and any(m.refiners for m in models):
        raise InputError(
            "refined rows need --split test: the refiners were trained on the cross-validation predictions"
        )
    if len({m.name for m in models}) != len(models):
        raise InputError("two models have the same name; give them labels (LABEL=TRAINER:PLANS)")
    for m in models:
        for f in folds:
            fold_folder(m, results_root, dataset, f)
    return models


def prepare_benchmark(
    folders: NnUNetFolders,
    dataset,
    split,
    images,
    labels,
    output,
    overwrite: bool,
    protocol: str | EvaluationProtocol = "brats-2023",
    official_config: str | None = None,
    **options,
) -> BenchmarkSetup:
    """The shared set-up (see :class:`BenchmarkSetup`); refuses an existing ``benchmark.md`` unless ``overwrite``."""
    if split not in ("cv", "test"):
        raise InputError(f"split must be 'cv' or 'test', got {split!r}")
    results_root = str(folders.require("nnUNet_results"))
    pre = folders.preprocessed_dataset(dataset)
    dataset_json = json.loads((pre / "dataset.json").read_text())
    if isinstance(protocol, str):
        protocol = make_protocol(protocol, dataset_json, official_config)
    region_names = protocol.unit_names()
    names = [region_names[r] for r in protocol.units()]
    ordered = [n for n in PREFERRED_ORDER if n in names] + [n for n in names if n not in PREFERRED_ORDER]
    out = Path(output) if output else Path(results_root) / pre.name / f"benchmark_{split}"
    if (out / "benchmark.md").exists() and not overwrite:
        raise OutputExistsError(
            f"{out / 'benchmark.md'} already exists; pass --overwrite or choose another -o"
        )
    setup = BenchmarkSetup(
        pre.name,
        pre,
        dataset_json,
        ordered,
        results_root,
        split,
        out,
        protocol=protocol,
        **options,
    )
    if split == "test":
        if images is None or labels is None:
            raw = folders.require("nnUNet_raw") / pre.name
        setup.images = Path(images) if images else raw / "imagesTs"
        setup.labels = Path(labels) if labels else raw / "labelsTs"
        setup.cases = case_files(
            setup.images, dataset_json["file_ending"], len(dataset_json["channel_names"])
        )
        if not setup.labels.is_dir():
            raise InputError(f"{setup.labels}: the test labels folder does not exist (pass --labels)")
    return setup


def cv_fold(setup: BenchmarkSetup, model: ModelSpec, fold: int) -> FoldResult:
    """One fold's cross-validation predictions (nnU-Net's final validation) scored against the references."""
    pred_dir = fold_folder(model, setup.results_root, setup.dataset_name, fold) / "validation"
    if not pred_dir.is_dir():
        raise InputError(f"{model.name}: {pred_dir} does not exist (nnU-Net's final validation did not run)")
    ending = setup.dataset_json["file_ending"]
    cases = sorted(p.name[: -len(ending)] for p in pred_dir.glob(f"*{ending}"))
    summary = setup.evaluate(setup.preprocessed / "gt_segmentations", pred_dir, model.name, fold, cases)
    return _fold_result(summary, fold, None)


def refined_fold(setup: BenchmarkSetup, model: ModelSpec, refiner: str, fold: int, base: dict) -> FoldResult:
    """One fold's test predictions refined by that fold's refiner, scored; seconds = prediction + refinement."""
    from nnunet_diffrefine.refine.postprocess import PostprocessConfig
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

    name = refined_row(model, refiner)
    refined_dir = setup.prediction_folder(name, fold)
    model_dir = fold_folder(model, setup.results_root, setup.dataset_name, fold).parent
    refine_folder(
        setup.prediction_folder(model.name, fold),
        refined_dir,
        model_dir,
        [fold],
        setup.images,
        # no post-processing: the base rows are scored as nnU-Net predicted them, so a refined row is too
        # (else the table credits the refiner with what the morphology did)
        RefineOptions(
            refiner=refiner,
            device=setup.device,
            progress=setup.progress,
            postprocess=PostprocessConfig(enabled=False),
        ),
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
    summary = setup.evaluate(setup.labels, refined_dir, name, fold, list(base))
    return _fold_result(summary, fold, combined)


def held_out_fold(setup: BenchmarkSetup, model: ModelSpec, fold: int) -> list[FoldResult]:
    """One fold predicting the test split (timed), scored; then one result per refined row."""
    pred_dir = setup.prediction_folder(model.name, fold)
    model_dir = fold_folder(model, setup.results_root, setup.dataset_name, fold).parent
    measurements = predict_cases(
        model_dir,
        fold,
        setup.cases,
        pred_dir,
        setup.device,
        setup.use_mirroring,
        save_probabilities=bool(model.refiners),
        progress=setup.progress,
    )
    summary = setup.evaluate(setup.labels, pred_dir, model.name, fold, list(setup.cases))
    results = [_fold_result(summary, fold, measurements)]
    return results + [refined_fold(setup, model, r, fold, measurements) for r in model.refiners]


def write_tables(setup: BenchmarkSetup, results: list[ModelResult], folds: list[int]) -> None:
    """``benchmark.md``, ``benchmark.csv``, ``benchmark_dice.png`` and ``benchmark.json``."""
    split = "cross-validation" if setup.split == "cv" else "test split"
    title = f"{setup.dataset_name}: {split}, folds {', '.join(map(str, folds))}"
    with atomic_output_file(setup.out / "benchmark.csv") as tmp:
        tmp.write_text(csv_rows(results, setup.regions))
    dice_bar_chart(results, setup.regions, setup.out / "benchmark_dice.png", title)
    write_json(
        {
            "dataset": setup.dataset_name,
            "split": setup.split,
            "folds": folds,
            "regions": setup.regions,
            "protocol": setup.protocol.name,
            "official_config": getattr(setup.protocol, "config", None),
            "models": [{"name": r.name, "folds": [vars(f) for f in r.folds]} for r in results],
        },
        setup.out / "benchmark.json",
    )
    with atomic_output_file(setup.out / "benchmark.md") as tmp:
        tmp.write_text(f"# Benchmark: {title}\n\n" + markdown_table(results, setup.regions, setup.protocol))


def run_benchmark(
    folders: NnUNetFolders,
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
    protocol: str | EvaluationProtocol = "brats-2023",
    official_config: str | None = None,
) -> Path:
    """Run the benchmark in nnU-Net's ``folders`` and return the output folder (see the module docstring)."""
    options = dict(device=device, use_mirroring=use_mirroring, num_processes=num_processes, progress=progress)
    setup = prepare_benchmark(
        folders, dataset, split, images, labels, output, overwrite, protocol, official_config, **options
    )
    models = _check_models(models, folds, split, setup.results_root, setup.dataset_name)
    setup.out.mkdir(parents=True, exist_ok=True)
    results: list[ModelResult] = []
    for m in models:
        rows = [ModelResult(m.name)] + [ModelResult(refined_row(m, r)) for r in m.refiners]
        for f in folds:
            fold_results = [cv_fold(setup, m, f)] if split == "cv" else held_out_fold(setup, m, f)
            for row, result in zip(rows, fold_results):
                row.folds.append(result)
        results.extend(rows)
    write_tables(setup, results, folds)
    return setup.out
