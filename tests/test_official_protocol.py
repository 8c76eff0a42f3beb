"""The official BraTS protocol (``evaluate --protocol brats-official``) against the official scorer.

The agreement test writes generated cases (several lesions per region, missed and spurious lesions,
an empty prediction, an empty reference, anisotropic spacing) for the ``gli``, ``ped`` and ``mets``
configurations, runs ``brats-evaluate`` and ``brats-parse-metrics seg`` (``mets`` for the metastasis
configuration, as its leaderboard; the ``BraTS-evaluation`` package, a test-only dependency) and our
command, and compares every metric of every label group, per case and in the mean, the std and the
median rows.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.evaluation.official import (
    OFFICIAL_GROUPS,
    columns_of,
    foreground_box,
    score_case_official,
)

BIN = Path(sys.executable).parent
LABELS = {"gli": (1, 2, 3, 4), "ped": (1, 2, 3, 4), "mets": (1, 2, 3, 4)}
SPACING_XYZ = (1.0, 1.5, 2.0)


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius**2


def _case(rng: np.random.Generator, labels: tuple[int, ...], kind: str, shape=(30, 34, 38)):
    """A reference with two or three lesions (each a shell of labels) and a one-voxel lesion, and a
    prediction that shifts, misses or adds lesions; ``kind``: normal, missed (a large and a small
    lesion), spurious, empty_prediction, empty_reference."""
    reference, prediction = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    centres = [(8, 9, 9), (21, 24, 27), (8, 26, 30)][: 2 + int(rng.integers(0, 2))]
    for i, centre in enumerate(centres):
        radius = float(rng.uniform(3.5, 6.0))
        order = rng.permutation(labels)[:3]
        shift = rng.integers(-1, 2, size=3)
        for scale, label in zip((1.0, 0.6, 0.3), order):
            reference[_ball(shape, centre, radius * scale)] = label
            if not (kind == "missed" and i == 1):
                prediction[
                    _ball(shape, tuple(np.add(centre, shift)), radius * scale * rng.uniform(0.8, 1.2))
                ] = label
    reference[2, 2, 30] = prediction[2, 2, 30] = labels[0]  # a small lesion (< 20 mm³), found
    if kind == "missed":
        reference[27, 3, 3] = labels[1]  # a small lesion, missed
    if kind == "spurious":
        prediction[_ball(shape, (25, 6, 6), 2.5)] = labels[0]
        prediction[_ball(shape, (3, 30, 4), 1.5)] = labels[-1]
    if kind == "empty_prediction":
        prediction[:] = 0
    if kind == "empty_reference":
        reference[:] = 0
    return reference, prediction


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(image, str(path))


def _read_csv(path: Path) -> dict[str, dict[str, float]]:
    rows = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            subject = row.pop("subject_id")
            rows[subject] = {k: float(v) if v != "" else math.nan for k, v in row.items()}
    return rows


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-6


def test_known_answers_of_the_official_metrics():
    pytest.importorskip("panoptica")
    shape = (20, 20, 20)
    reference = np.zeros(shape, np.uint8)
    reference[_ball(shape, (6, 6, 6), 4)] = 2
    reference[_ball(shape, (14, 14, 14), 3)] = 2
    same = score_case_official(reference, reference, (1.0, 1.0, 1.0), "gli")["snfh"]
    assert (same["all_instance_tp"], same["all_instance_fp"], same["all_instance_fn"]) == (2, 0, 0)
    assert same["global_dsc"] == same["lesionwise_dsc_mean"] == same["global_nsd"] == 1.0
    assert same["global_hd95"] == same["lesionwise_hd95_mean"] == 0.0
    half = reference.copy()
    half[_ball(shape, (14, 14, 14), 3)] = 0  # one of two lesions missed
    missed = score_case_official(half, reference, (1.0, 1.0, 1.0), "gli")["snfh"]
    assert missed["all_instance_fn"] == 1 and missed["lesionwise_dsc_mean"] == 1.0  # matched lesions only
    assert missed["all_instance_f1"] == pytest.approx(1 / 1.5)  # tp / (tp + (fp + fn) / 2)
    empty = score_case_official(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8), (1, 1, 1), "gli")["et"]
    assert all(math.isnan(v) for k, v in empty.items() if k.startswith(("global", "lesionwise")))
    only_reference = score_case_official(np.zeros(shape, np.uint8), reference, (1, 1, 1), "gli")["snfh"]
    assert only_reference["global_hd95"] == 373.0 and only_reference["lesionwise_hd95_mean"] == math.inf


def test_foreground_box_known_answer():
    a, b = np.zeros((10, 12, 14), np.uint8), np.zeros((10, 12, 14), np.uint8)
    assert foreground_box(a, b) is None
    a[3, 4, 5], b[6, 11, 7] = 1, 3
    assert foreground_box(a, b, margin=2) == (slice(1, 9), slice(2, 12), slice(3, 10))
    assert foreground_box(a, b, margin=0) == (slice(3, 7), slice(4, 12), slice(5, 8))


@pytest.mark.parametrize("config", sorted(LABELS))
def test_cropping_to_the_foreground_changes_no_official_metric(config):
    """The cases of the agreement test placed off-centre in a larger grid (the rest background, one lesion
    touching the grid's edge), anisotropic spacing: every metric of every group as on the whole grid."""
    pytest.importorskip("panoptica")
    rng = np.random.default_rng(7)
    for kind in ("normal", "missed", "spurious", "empty_prediction", "empty_reference"):
        reference, prediction = _case(rng, LABELS[config], kind)
        big_ref, big_pred = np.zeros((44, 60, 50), np.uint8), np.zeros((44, 60, 50), np.uint8)
        big_ref[9:39, 0:34, 5:43], big_pred[9:39, 0:34, 5:43] = reference, prediction
        big_pred[20:24, 0:3, 20:25] = LABELS[config][1]  # at the edge of the grid
        cropped = score_case_official(big_pred, big_ref, SPACING_XYZ, config)
        whole = score_case_official(big_pred, big_ref, SPACING_XYZ, config, crop=False)
        assert cropped.keys() == whole.keys()
        for group in whole:
            for column, value in whole[group].items():
                assert _same(cropped[group][column], value), (
                    kind,
                    group,
                    column,
                    cropped[group][column],
                    value,
                )


@pytest.mark.parametrize("config", sorted(LABELS))
def test_our_official_protocol_equals_brats_evaluate(config, tmp_path):
    pytest.importorskip("panoptica")
    if not (BIN / "brats-evaluate").exists():
        pytest.fail(
            "the BraTS-evaluation package (a test dependency) is not installed: pip install -e '.[test]'"
        )
    rng = np.random.default_rng(["gli", "ped", "mets"].index(config))
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    kinds = ("normal", "missed", "spurious", "empty_prediction", "empty_reference", "normal")
    for i, kind in enumerate(kinds):
        reference, prediction = _case(rng, LABELS[config], kind)
        _write(reference, ref / f"BraTS-GLI-{i:05d}-000.nii.gz")
        _write(prediction, pred / f"BraTS-GLI-{i:05d}-000.nii.gz")
    official_json, official_csv = tmp_path / "official.json", tmp_path / "official.csv"
    subprocess.run(
        [str(BIN / "brats-evaluate"), "--ref_path", str(ref), "--pred_path", str(pred), "--config", config]
        + ["--summary_json", str(official_json)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(BIN / "brats-parse-metrics"),
            "mets" if config == "mets" else "seg",
            "--json_path",
            str(official_json),
        ]
        + ["--output_csv_path", str(official_csv)],
        check=True,
        capture_output=True,
    )
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0}, "file_ending": ".nii.gz"}))
    ours_json = tmp_path / "ours.json"
    command = ["evaluate", str(ref), str(pred), "-djfile", str(dataset), "-o", str(ours_json)]
    assert main([*command, "--protocol", "brats-official", "--official-config", config, "-np", "2"]) == 0

    theirs, ours = _read_csv(official_csv), _read_csv(ours_json.with_suffix(".csv"))
    assert list(ours) == list(theirs)  # the same cases and the mean, std and median rows, in order
    groups = [name for name, _, _ in OFFICIAL_GROUPS[config]]
    expected_columns = [f"{c}_{g}" for g in groups for c in columns_of(config)]
    assert list(next(iter(ours.values()))) == list(next(iter(theirs.values()))) == expected_columns
    differences = [
        (row, column, theirs[row][column], ours[row][column])
        for row in theirs
        for column in expected_columns
        if not _same(theirs[row][column], ours[row][column])
    ]
    assert differences == []
    summary = json.loads(ours_json.read_text())
    assert summary["protocol"] == "brats-official" and summary["official_config"] == config
    for group in groups:
        for column in columns_of(config):
            assert _same(summary["mean"][group][column], theirs["mean"][f"{column}_{group}"])
