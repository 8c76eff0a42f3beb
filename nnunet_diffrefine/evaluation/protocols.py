"""Evaluation protocols: what a protocol supplies to the one case loop (:func:`.folder.evaluate_with`).

A protocol says which units a case is scored on (regions, labels or the official label groups), the
function that scores one case (run in this process or in spawned workers), how cases are aggregated
into ``summary.json``, the rows of its CSV, and the columns it contributes to the benchmark table.
Two are built in (:data:`PROTOCOLS`):

- ``brats-2023`` (:class:`Brats2023Protocol`): nnU-Net's metrics plus HD95, NSD, sensitivity,
  precision, volumes and the BraTS 2023 lesion-wise scores, per region or label; nnU-Net's summary.json
  layout; more per-case metrics are one :class:`~.case.CaseMetric` each (``extra_metrics``);
- ``brats-official`` (:class:`OfficialProtocol`): the official BraTS scorer (:mod:`.official`), per
  label group, with the official parser's CSV.

A new protocol is one subclass of :class:`EvaluationProtocol`; it reaches ``evaluate``'s files and the
benchmark's table without other edits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.case import METRIC_NAMES, CaseMetric, evaluate_case
from nnunet_diffrefine.evaluation.conventions import (
    BRATS_HD95_PENALTY_MM,
    EmptyConvention,
    check_empty_convention,
    check_penalty,
)
from nnunet_diffrefine.evaluation.dataset import dataset_lesion_params, dataset_regions
from nnunet_diffrefine.evaluation.lesionwise import LesionWiseParams
from nnunet_diffrefine.evaluation.official import OFFICIAL_GROUPS, columns_of, mean_official
from nnunet_diffrefine.evaluation.official_folder import (
    default_official_config,
    official_csv_rows,
    score_files,
)


@dataclass(frozen=True)
class FolderScores:
    """What the case loop hands a protocol: the reference and prediction files (same order), each case's
    result, the case ids without a prediction and the number of predictions without a reference."""

    references: list[str]
    predictions: list[str]
    per_case: list
    missing: list[str]
    unmatched_predictions: int


@dataclass(frozen=True)
class TableColumn:
    """A benchmark-table column: the benchmark metric averaged over the regions, ``digits`` decimals."""

    metric: str
    title: str
    digits: int = 3


class EvaluationProtocol(ABC):
    """The parts of an evaluation that differ between protocols (see the module docstring)."""

    name: ClassVar[str]
    progress_label: ClassVar[str] = "evaluating cases"
    needs_a_prediction: ClassVar[bool] = True
    """True: a folder in which no reference case has a prediction is an error."""
    missing_scored_as: ClassVar[str] = "empty"
    """How a missing prediction is scored, for the message that lists them."""

    def __init__(self, dataset_json: dict) -> None:
        self.dataset_json = dataset_json

    def file_ending(self) -> str:
        ending = self.dataset_json.get("file_ending")
        if not isinstance(ending, str) or not ending:
            raise InputError("dataset.json has no 'file_ending'")
        return ending

    @abstractmethod
    def units(self) -> list[Hashable]:
        """What each case is scored on, in order (the keys of ``summary["mean"]``)."""

    @abstractmethod
    def unit_names(self) -> dict[Hashable, str]:
        """The display name of each unit (``WT``, ``TC``, ``ET``, a label name, a group)."""

    @abstractmethod
    def case_task(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        """``(function, keyword arguments)``: ``function(reference_file, prediction_file, **kwargs)`` scores
        one case; both must pickle (module-level function, plain values) for worker processes."""

    def worker_initializer(self) -> tuple[Callable[..., None], tuple] | None:
        """``(initializer, arguments)`` for each worker process, or None."""
        return None

    @abstractmethod
    def summarize(self, scores: FolderScores) -> dict:
        """``summary.json``'s content from the per-case results."""

    @abstractmethod
    def write_summary(self, summary: dict, path: Path) -> None:
        """Write ``summary`` to ``path`` (a ``.json`` file), atomically."""

    @abstractmethod
    def csv_table(self, case_ids: list[str], summary: dict) -> tuple[list[str], list[list]]:
        """The CSV beside summary.json: ``(header, rows)``."""

    @abstractmethod
    def benchmark_means(self, summary: dict) -> dict[str, dict[str, float]]:
        """``{unit display name: {benchmark metric: mean}}``; the benchmark's metrics are ``Dice`` and
        ``HD95`` plus those of :attr:`table_columns`."""

    # --- the benchmark table ------------------------------------------------------------------------------
    hd95_title: ClassVar[str] = "HD95 (mm) ↓"

    @property
    @abstractmethod
    def table_columns(self) -> tuple[TableColumn, ...]:
        """Columns after Dice and HD95 in the benchmark table."""

    @property
    @abstractmethod
    def table_note(self) -> str:
        """The sentence under the benchmark table that says how its numbers were made."""


class Brats2023Protocol(EvaluationProtocol):
    """nnU-Net's metrics, HD95 and the BraTS 2023 lesion-wise scores, per region (region-based datasets)
    or per label; empty masks follow ``empty_convention`` ("brats": both empty -> Dice 1, HD95 0; one
    empty -> Dice 0, HD95 ``hd95_penalty``; "nan": nnU-Net's NaNs). ``lesion_params``: default the
    sub-challenge's (:func:`~.folder.dataset_lesion_params`). ``extra_metrics``: more per-case metrics."""

    name = "brats-2023"

    def __init__(
        self,
        dataset_json: dict,
        empty_convention: EmptyConvention = "brats",
        lesion_params: LesionWiseParams | None = None,
        hd95_penalty: float = BRATS_HD95_PENALTY_MM,
        extra_metrics: Sequence[CaseMetric] = (),
    ) -> None:
        super().__init__(dataset_json)
        check_empty_convention(empty_convention)
        self.empty_convention = empty_convention
        self.hd95_penalty = check_penalty(hd95_penalty)
        self.regions, self.region_names, self.known_labels = dataset_regions(dataset_json)
        self.lesion_params = lesion_params or dataset_lesion_params(dataset_json)
        self.extra_metrics = tuple(extra_metrics)
        clash = {m.name for m in self.extra_metrics} & set(METRIC_NAMES)
        if clash:
            raise InputError(f"metric name(s) {sorted(clash)} already exist")
        self.metric_names = (*METRIC_NAMES, *(m.name for m in self.extra_metrics))

    def units(self) -> list[Hashable]:
        return list(self.regions)

    def unit_names(self) -> dict[Hashable, str]:
        return dict(self.region_names)

    def case_task(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        options = {
            "regions": self.regions,
            "known_labels": self.known_labels,
            "empty_convention": self.empty_convention,
            "lesion_params": self.lesion_params,
            "hd95_penalty": self.hd95_penalty,
            "missing_ok": True,
            "extra_metrics": self.extra_metrics,
        }
        return evaluate_case, options

    def worker_initializer(self) -> tuple[Callable[..., None], tuple] | None:
        from nnunet_diffrefine.evaluation.surface import neighbour_code_normals, set_neighbour_code_normals

        return set_neighbour_code_normals, (neighbour_code_normals(),)  # built here once

    def summarize(self, scores: FolderScores) -> dict:
        from nnunet_diffrefine.evaluation.summary import mean_metrics

        means, foreground_mean = mean_metrics(scores.per_case, self.regions, self.metric_names)
        p = self.lesion_params
        return {
            "metric_per_case": scores.per_case,
            "mean": means,
            "foreground_mean": foreground_mean,
            "missing_predictions": scores.missing,
            "settings": {
                "empty_convention": self.empty_convention,
                "hd95_penalty_mm": self.hd95_penalty,
                "lesion_dilation": int(p.dilation),
                "lesion_dilation_connectivity": int(p.connectivity),
                "lesion_min_volume_mm3": float(p.min_volume_mm3),
                "file_ending": self.file_ending(),
                "region_names": {str(r): self.region_names[r] for r in self.regions},
                "num_cases": len(scores.references),
                "predictions_without_reference": scores.unmatched_predictions,
            },
        }

    def write_summary(self, summary: dict, path: Path) -> None:
        from nnunet_diffrefine.evaluation.summary import write_summary_json

        write_summary_json(summary, path)

    def csv_table(self, case_ids: list[str], summary: dict) -> tuple[list[str], list[list]]:
        from nnunet_diffrefine.evaluation.summary import summary_rows

        return summary_rows(
            case_ids, summary["metric_per_case"], self.regions, self.region_names, self.metric_names
        )

    def benchmark_means(self, summary: dict) -> dict[str, dict[str, float]]:
        return {
            self.region_names[r]: {k: float(v) for k, v in metrics.items()}
            for r, metrics in summary["mean"].items()
        }

    @property
    def table_columns(self) -> tuple[TableColumn, ...]:
        extra = tuple(TableColumn(m.name, m.title, m.digits) for m in self.extra_metrics if m.title)
        return (TableColumn("Sensitivity", "Sensitivity"), TableColumn("Precision", "Precision"), *extra)

    @property
    def table_note(self) -> str:
        return (
            "Mean ± standard deviation over folds (each fold: mean over its cases). HD95, sensitivity and "
            "precision are averaged over the regions. Empty masks follow the BraTS convention (both empty: "
            "Dice 1, HD95 0; one empty: Dice 0, HD95 374 mm)."
        )


class OfficialProtocol(EvaluationProtocol):
    """The official BraTS scorer (:mod:`.official`) per label group of ``config`` (default: the
    configuration of the dataset's convention); the official parser's CSV."""

    name = "brats-official"
    progress_label = "evaluating cases (official protocol)"
    needs_a_prediction = False  # the official parser scores a missing prediction as its penalty row
    missing_scored_as = "the official parser's penalty row"
    hd95_title = "HD95 (voxels; mm on 1 mm grids) ↓"

    def __init__(self, dataset_json: dict, config: str | None = None) -> None:
        super().__init__(dataset_json)
        self.config = config or default_official_config(dataset_json)
        if self.config not in OFFICIAL_GROUPS:
            raise InputError(
                f"unknown official configuration {self.config!r}; choose one of {', '.join(OFFICIAL_GROUPS)}"
            )
        self.groups = [group for group, _, _ in OFFICIAL_GROUPS[self.config]]

    def file_ending(self) -> str:
        return self.dataset_json.get("file_ending") or ".nii.gz"

    def units(self) -> list[Hashable]:
        return list(self.groups)

    def unit_names(self) -> dict[Hashable, str]:
        return {group: group.upper() for group in self.groups}

    def case_task(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        return score_files, {"config": self.config}

    def summarize(self, scores: FolderScores) -> dict:
        by_name = {Path(r).name: m for r, m in zip(scores.references, scores.per_case, strict=True)}
        mean = mean_official(by_name)
        return {
            "protocol": self.name,
            "official_config": self.config,
            "metric_per_case": [
                {"reference_file": r, "prediction_file": p, "metrics": m}
                for r, p, m in zip(scores.references, scores.predictions, scores.per_case, strict=True)
            ],
            "mean": mean,
            "foreground_mean": {c: _nanmean([mean[g][c] for g in mean]) for c in columns_of(self.config)},
            "missing_predictions": scores.missing,
        }

    def write_summary(self, summary: dict, path: Path) -> None:
        from nnunet_diffrefine.utils.io import write_json

        write_json(summary, path)

    def csv_table(self, case_ids: list[str], summary: dict) -> tuple[list[str], list[list]]:
        missing = set(summary["missing_predictions"])
        per_case = {Path(c["reference_file"]).name: c["metrics"] for c in summary["metric_per_case"]}
        names = list(per_case)
        ids = dict(zip(names, case_ids, strict=True))
        in_parser_order = [n for n in names if ids[n] not in missing] + [
            n for n in names if ids[n] in missing
        ]
        return official_csv_rows({n: per_case[n] for n in in_parser_order})

    def benchmark_means(self, summary: dict) -> dict[str, dict[str, float]]:
        names = self.unit_names()
        return {names[group]: _official_metrics(m) for group, m in summary["mean"].items()}

    @property
    def table_columns(self) -> tuple[TableColumn, ...]:
        return (
            TableColumn("NSD", "NSD"),
            TableColumn("LesionWise_Dice", "Lesion DSC"),
            TableColumn("Lesion_F1", "Lesion F1"),
        )

    @property
    def table_note(self) -> str:
        return (
            "Mean ± standard deviation over folds (each fold: mean over its cases). Official BraTS protocol "
            "(BraTS-evaluation): global DSC, HD95 (in voxels, as the official scorer; 373 where nothing overlaps) "
            "and NSD per label group, the "
            "matched lesions' DSC and the lesion F1, averaged over the groups; cases where both masks are empty "
            "are left out."
        )


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _official_metrics(means: dict) -> dict[str, float]:
    """The official columns under the benchmark's metric names."""
    return {
        "Dice": means["global_dsc"],
        "HD95": means["global_hd95"],
        "NSD": means["global_nsd"],
        "LesionWise_Dice": means["lesionwise_dsc_mean"],
        "LesionWise_HD95": means["lesionwise_hd95_mean"],
        "Lesion_F1": means["all_instance_f1"],
        "Lesion_Precision": means["all_instance_prec"],
        "Lesion_Recall": means["all_instance_rec"],
    }


PROTOCOLS: dict[str, type[EvaluationProtocol]] = {p.name: p for p in (Brats2023Protocol, OfficialProtocol)}
"""Every protocol by its name (``--protocol``)."""


def make_protocol(name: str, dataset_json: dict, official_config: str | None = None) -> EvaluationProtocol:
    """The protocol ``name`` for a dataset with its defaults; ``official_config`` belongs to ``brats-official``."""
    if name not in PROTOCOLS:
        raise InputError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    if name == OfficialProtocol.name:
        return OfficialProtocol(dataset_json, official_config)
    if official_config is not None:
        raise InputError("an official configuration belongs to the brats-official protocol")
    return PROTOCOLS[name](dataset_json)
