"""One real BraTS case through every stage: convert -> a tiny nnU-Net model (planned at 4 mm) that
predicts with probabilities -> train-refiner and refine -> evaluate with both protocols -> the offline
report. Checks what a user relies on: the outputs have the source's geometry (size, spacing, origin,
direction), only the convention's labels, and the report's volumes are the voxel counts times the
voxel volume.

The case is cropped first to its tumour's bounding box plus a 16-voxel margin (108 x 112 x 92 of its
155 x 240 x 240 voxels, every file alike, with SimpleITK, which moves the origin with the crop): an
eighth of the voxels for every stage, and a source whose origin is not the original's, so the geometry
check also shows that the origin is carried through.

The case is read from ``../shared/real/brats2018`` (override: ``NNUNET_DIFFREFINE_REAL_DATA``); the
test says so and is skipped when the real cases are not there. Nothing of it is written outside
``tmp_path``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import isolated_nnunet_env, nnunet_commands

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("NNUNET_DIFFREFINE_REAL_DATA", REPO.parent / "shared" / "real" / "brats2018"))
CASE = "Brats18_2013_11_1"
DATASET, NAME = 985, "RealOne"
TRAINER, PLANS = "nnUNetTrainerCustomSchedule", "nnUNetPlans4mmCPU"
MARGIN = 16  # voxels around the tumour kept by the crop


class InProcessCli:
    """``nnunet-diffrefine ARGS`` run in this process (no new interpreter to import torch and nnU-Net
    for each command: most of this test's time otherwise); returns what it printed, and the seconds
    of each command are shown with ``pytest -s``."""

    def __init__(self, env: dict[str, str], monkeypatch, capsys) -> None:
        for key in [k for k in os.environ if k.startswith(("nnUNet_", "DIFFREFINE_"))]:
            monkeypatch.delenv(key)
        for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
            monkeypatch.setenv(key, env[key])
        self.capsys = capsys

    def __call__(self, *args: str) -> str:
        from nnunet_diffrefine.cli.main import main

        with Timed(f"nnunet-diffrefine {args[0]}", self.capsys):
            self.capsys.readouterr()
            code = main(list(args))
            out, err = self.capsys.readouterr()
        assert code == 0, f"nnunet-diffrefine {' '.join(args)} failed:\n{out[-3000:]}\n{err[-3000:]}"
        return out


class Timed:
    """Prints the seconds a block took (shown with ``pytest -s``)."""

    def __init__(self, label: str, capsys) -> None:
        self.label, self.capsys = label, capsys

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        with self.capsys.disabled():
            print(f"{time.perf_counter() - self.start:6.1f} s  {self.label}")


def _model_args() -> list[str]:
    return ["-d", str(DATASET), "-tr", TRAINER, "-p", PLANS, "-f", "0"]


def _geometry(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def _same_geometry(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and all(np.allclose(x, y, atol=1e-4) for x, y in zip(a[1:], b[1:]))


def _crop_to_tumour(case: Path, out: Path, margin: int = MARGIN) -> None:
    """Every ``<case>_*.nii.gz`` of ``case`` cropped alike to the segmentation's bounding box plus
    ``margin`` voxels (clipped to the image), written to ``out``."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"{CASE}_seg.nii.gz")))
    foreground = np.argwhere(labels > 0)  # (N, 3) as z, y, x
    low = np.maximum(foreground.min(axis=0) - margin, 0)[::-1]  # x, y, z
    high = np.minimum(foreground.max(axis=0) + margin + 1, labels.shape)[::-1]
    out.mkdir(parents=True)
    for path in sorted(case.glob(f"{CASE}_*.nii.gz")):
        image = sitk.ReadImage(str(path))
        cropped = image[int(low[0]) : int(high[0]), int(low[1]) : int(high[1]), int(low[2]) : int(high[2])]
        sitk.WriteImage(cropped, str(out / path.name))


@pytest.fixture(scope="module")
def real_case() -> Path:
    folder = REAL / CASE
    if not folder.is_dir():
        pytest.skip(
            f"real BraTS cases missing at {REAL} (set NNUNET_DIFFREFINE_REAL_DATA to the brats2018 folder)"
        )
    return folder


@pytest.mark.slow
def test_a_real_case_through_every_stage(real_case, tmp_path, monkeypatch, capsys):
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    env = isolated_nnunet_env(tmp_path)
    cli = InProcessCli(env, monkeypatch, capsys)
    source = tmp_path / "source"
    _crop_to_tumour(real_case, source / CASE)
    cli("convert", "-i", str(source), "-d", str(DATASET), "-n", NAME, "--challenge", "brats2021")
    raw = Path(env["nnUNet_raw"]) / f"Dataset{DATASET}_{NAME}"
    case = json.loads((raw / "conversion_report.json").read_text())["train"][0]

    # a tiny model: planned by nnU-Net at 4 mm, two training iterations; it validates on its training case
    nnunet = nnunet_commands(env)
    with Timed("nnUNetv2_plan_and_preprocess", capsys):
        nnunet.plan_and_preprocess(DATASET, target_spacing_mm=(4, 4, 4), plans_name="nnUNetPlans4mm")
    pre = Path(env["nnUNet_preprocessed"]) / f"Dataset{DATASET}_{NAME}"
    (pre / "splits_final.json").write_text(json.dumps([{"train": [case], "val": [case]}]))
    write_plans_preset(
        DATASET, "nnunet", cpu=True, source_plans="nnUNetPlans4mm", preprocessed_root=pre.parent
    )
    schedule = dict(
        DIFFREFINE_NUM_EPOCHS="1", DIFFREFINE_ITERS_PER_EPOCH="2", DIFFREFINE_VAL_ITERS_PER_EPOCH="1"
    )
    with Timed("nnUNetv2_train", capsys):
        nnunet.train(DATASET, 0, TRAINER, PLANS, resume=False, extra_environment=schedule)
    pred = tmp_path / "pred"
    with Timed("nnUNetv2_predict", capsys):
        nnunet.predict(raw / "imagesTr", pred, DATASET, [0], TRAINER, PLANS, mirroring=False, workers=0)

    cli("train-refiner", *_model_args(), "--refiner", "control", "--preset", "tiny")
    refined = tmp_path / "refined"
    refine = [
        "refine",
        "-i",
        str(pred),
        "-o",
        str(refined),
        *_model_args(),
        "--images",
        str(raw / "imagesTr"),
    ]
    printed = cli(*refine, "--prior-disable-tta")
    assert "refine: fold 0: " in printed, "the gate's decision is printed"

    source_geometry = _geometry(source / CASE / f"{CASE}_t1.nii.gz")
    original = _geometry(real_case / f"{CASE}_t1.nii.gz")
    assert source_geometry[0] != original[0] and source_geometry[2] != original[2], "the source was cropped"
    for folder in (pred, refined):
        assert _same_geometry(_geometry(folder / f"{case}.nii.gz"), source_geometry), folder
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        probabilities = np.load(folder / f"{case}.npz")["probabilities"]
        assert probabilities.shape == (3, *labels.shape) and np.isfinite(probabilities).all()

    dataset_json = str(raw / "dataset.json")
    for protocol in ("brats-2023", "brats-official"):
        out = tmp_path / f"summary_{protocol}.json"
        evaluate = ["evaluate", str(raw / "labelsTr"), str(refined), "-djfile", dataset_json, "-o", str(out)]
        cli(*evaluate, "-np", "1", "--protocol", protocol)
        summary = json.loads(out.read_text())
        assert len(summary["metric_per_case"]) == 1, protocol

    images = [str(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(4)]
    report = tmp_path / "report"
    segmentation = refined / f"{case}.nii.gz"
    cli(
        "report",
        "-s",
        str(segmentation),
        "-i",
        *images,
        "-djfile",
        dataset_json,
        "-o",
        str(report),
        "--offline",
    )
    measured = json.loads((report / "measurements.json").read_text())
    seg = sitk.ReadImage(str(segmentation))
    labels, voxel_cm3 = sitk.GetArrayFromImage(seg), float(np.prod(seg.GetSpacing())) / 1000
    for name, members in {"NC": (1,), "ED": (2,), "ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)}.items():
        expected = np.isin(labels, members).sum() * voxel_cm3
        assert measured["volumes_cm3"][name] == pytest.approx(expected, abs=1e-4), name
    assert (report / "report.md").is_file()
