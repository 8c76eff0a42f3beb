"""One evaluation stack: a metric added in one place (a :class:`CaseMetric` handed to the protocol) reaches
summary.json, the CSV and the benchmark table without other edits, in this process and in workers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.benchmark.table import FoldResult, ModelResult, markdown_table
from nnunet_diffrefine.cli.arguments import PROTOCOL_NAMES
from nnunet_diffrefine.evaluation.case import CaseMetric
from nnunet_diffrefine.evaluation.folder import evaluate_with
from nnunet_diffrefine.evaluation.protocols import PROTOCOLS, Brats2023Protocol

DATASET_JSON = {
    "labels": {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [1, 3], "enhancing_tumor": [3]},
    "regions_class_order": [2, 1, 3],
    "file_ending": ".nii.gz",
}
SPACING = (1.0, 1.5, 2.0)  # x, y, z in mm: a voxel is 3 mm³


def absolute_volume_difference_cm3(pred: np.ndarray, ref: np.ndarray, spacing) -> float:
    """The toy metric: |predicted - reference volume| in cm³."""
    return abs(int(pred.sum()) - int(ref.sum())) * float(np.prod(spacing)) / 1000.0


TOY = CaseMetric("AbsVolumeDiff_cm3", absolute_volume_difference_cm3, "|ΔV| (cm³)", 2)


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path))


@pytest.fixture
def folders(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    rng = np.random.default_rng(0)
    for case in ("a", "b", "c"):
        ref = np.zeros((20, 20, 20), np.uint8)
        ref[4:16, 4:16, 4:16] = 2
        ref[6:13, 6:13, 6:13] = 1
        ref[8:11, 8:11, 8:11] = 3
        out = ref.copy()
        out[rng.integers(0, 20, 60), rng.integers(0, 20, 60), rng.integers(0, 20, 60)] = rng.integers(
            0, 4, 60
        )
        _write(ref, gt / f"{case}.nii.gz")
        _write(out, pred / f"{case}.nii.gz")
    return gt, pred


@pytest.mark.parametrize("workers", [1, 2])
def test_a_metric_added_in_one_place_reaches_summary_csv_and_the_benchmark_table(folders, tmp_path, workers):
    gt, pred = folders
    protocol = Brats2023Protocol(DATASET_JSON, extra_metrics=(TOY,))
    summary = evaluate_with(
        protocol, gt, pred, tmp_path / "summary.json", num_processes=workers, progress=False
    )

    saved = json.loads((tmp_path / "summary.json").read_text())
    for case in saved["metric_per_case"]:  # a known answer: the difference of the volumes it already has
        for metrics in case["metrics"].values():
            expected = abs(metrics["Volume_pred_cm3"] - metrics["Volume_ref_cm3"])
            assert metrics["AbsVolumeDiff_cm3"] == pytest.approx(expected, abs=1e-9)
    assert all("AbsVolumeDiff_cm3" in m for m in saved["mean"].values())
    assert "AbsVolumeDiff_cm3" in saved["foreground_mean"]
    assert max(m["AbsVolumeDiff_cm3"] for m in saved["mean"].values()) > 0, "the predictions differ"

    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("AbsVolumeDiff_cm3")
    assert len(rows) == 1 + 3 * 3 and all(row[column] for row in rows[1:])

    fold = FoldResult(0, protocol.benchmark_means(summary))
    table = markdown_table([ModelResult("toy", [fold])], ["TC", "WT", "ET"], protocol)
    header = table.splitlines()[0]
    assert "|ΔV| (cm³)" in header and header.index("Precision") < header.index("|ΔV| (cm³)")
    mean = np.mean([fold.per_region[r]["AbsVolumeDiff_cm3"] for r in ("TC", "WT", "ET")])
    assert f"{mean:.2f} ± 0.00" in table.splitlines()[2]


def test_a_metric_cannot_shadow_a_built_in_one():
    from nnunet_diffrefine.errors import InputError

    with pytest.raises(InputError, match="Dice"):
        Brats2023Protocol(DATASET_JSON, extra_metrics=(CaseMetric("Dice", absolute_volume_difference_cm3),))


def test_the_command_line_offers_every_protocol():
    assert set(PROTOCOL_NAMES) == set(PROTOCOLS)
