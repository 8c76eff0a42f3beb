"""Synthetic phantoms: determinism, label structure, intensities and the nnU-Net layout."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.data.brats import MODALITIES
from nnunet_diffrefine.data.synth import SynthConfig, generate_case, synthesize_dataset
from nnunet_diffrefine.data.template import grid_spacing
from nnunet_diffrefine.errors import InputError

SHAPE = (48, 48, 48)


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_whatever_the_process_count(tmp_path):
    cfg = SynthConfig(shape=SHAPE, seed=11, phenotype="mixed")
    a = synthesize_dataset(tmp_path / "a", 5, "Det", 3, 1, cfg, num_processes=1, progress=False)
    b = synthesize_dataset(tmp_path / "b", 5, "Det", 3, 1, cfg, num_processes=2, progress=False)
    assert _digest(a) == _digest(b)
    c = synthesize_dataset(
        tmp_path / "c", 5, "Det", 3, 1, SynthConfig(shape=SHAPE, seed=12, phenotype="mixed"), progress=False
    )
    assert _digest(a) != _digest(c)


@pytest.mark.parametrize("phenotype", ["adult", "pediatric"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regions_are_nested_and_background_is_zero(phenotype, seed):
    case = generate_case(SynthConfig(shape=(64, 64, 64), seed=seed, phenotype=phenotype), 0)
    labels = case.labels
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    wt, tc, et = labels > 0, np.isin(labels, (1, 3)), labels == 3
    assert tc.sum() > 0, "every phantom has a tumor core"
    assert not (et & ~tc).any() and not (tc & ~wt).any()  # ET inside TC inside WT
    brain = case.images[0] > 0
    for c in range(4):  # all four contrasts share the skull-stripped support, exactly 0 outside
        assert np.array_equal(case.images[c] > 0, brain)
    assert not (wt & ~brain).any(), "the tumor lies inside the brain"
    assert case.images.dtype == np.int16 and labels.dtype == np.uint8


def _median(image, mask):
    return float(np.median(image[mask]))


def test_contrasts_have_the_expected_relative_intensities():
    case = generate_case(SynthConfig(shape=(96, 96, 96), seed=4, phenotype="adult"), 0)
    t1n, t1c, t2w, flair = case.images.astype(float)
    maps = case.tissue
    wm = (maps.wm > 0.9) & (case.labels == 0)
    csf = (maps.csf > 0.9) & (case.labels == 0)
    edema, necrosis, enhancing = case.labels == 2, case.labels == 1, case.labels == 3
    assert edema.sum() > 50 and enhancing.sum() > 20 and necrosis.sum() > 5
    assert _median(flair, edema) > 1.3 * _median(flair, wm), "edema brighter than white matter on FLAIR"
    assert _median(t2w, edema) > 1.3 * _median(t2w, wm), "edema bright on T2"
    assert _median(t2w, csf) > 2 * _median(t2w, wm) and _median(flair, csf) < 0.5 * _median(flair, wm), (
        "CSF bright on T2, dark on FLAIR"
    )
    assert _median(t1n, csf) < 0.5 * _median(t1n, wm), "CSF dark on T1"
    assert _median(t1c, enhancing) > 1.3 * _median(t1c, wm), "enhancing rim bright on T1c"
    assert _median(t1c, necrosis) < 0.7 * _median(t1c, enhancing), "necrosis dark on T1c"


def test_pediatric_phenotype_has_little_enhancement_and_sits_near_the_midline():
    et_fraction, offsets = [], []
    for seed in range(6):
        case = generate_case(
            SynthConfig(shape=(64, 64, 64), seed=seed, phenotype="pediatric", second_lesion_prob=0), 0
        )
        tc = np.isin(case.labels, (1, 3))
        et_fraction.append((case.labels == 3).sum() / tc.sum())
        x_mm = (np.argwhere(tc)[:, 2].mean() - 31.5) * case.spacing[2]
        offsets.append(abs(x_mm))
    adult = generate_case(SynthConfig(shape=(64, 64, 64), seed=0, phenotype="adult"), 0)
    adult_et = (adult.labels == 3).sum() / np.isin(adult.labels, (1, 3)).sum()
    assert np.mean(et_fraction) < 0.5 * adult_et
    assert np.median(offsets) < 25.0, f"pediatric tumors should be near the midline, got {offsets} mm"


def test_dataset_layout_dataset_json_and_geometry(tiny_raw):
    folder = tiny_raw / "Dataset990_Tiny"
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["numTraining"] == 4
    assert ds["channel_names"] == {"0": "T1n", "1": "T1c", "2": "T2w", "3": "T2F"}
    assert ds["labels"] == {
        "background": 0,
        "whole_tumor": [1, 2, 3],
        "tumor_core": [1, 3],
        "enhancing_tumor": [3],
    }
    assert ds["regions_class_order"] == [2, 1, 3]
    cases = sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").iterdir())
    assert len(cases) == 4 and len(list((folder / "imagesTr").iterdir())) == 16
    assert len(list((folder / "imagesTs").iterdir())) == 4 and len(list((folder / "labelsTs").iterdir())) == 1
    label = sitk.ReadImage(str(folder / "labelsTr" / f"{cases[0]}.nii.gz"))
    image = sitk.ReadImage(str(folder / "imagesTr" / f"{cases[0]}_0003.nii.gz"))
    assert label.GetSize() == image.GetSize() == SHAPE
    assert np.allclose(label.GetSpacing(), grid_spacing(SHAPE)) and np.allclose(image.GetSpacing(), 5.0)
    assert label.GetOrigin() == image.GetOrigin() and image.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    record = json.loads((folder / "synthesis.json").read_text())
    assert set(record["cases"]) == set(cases) | {
        p.name[:-12] for p in (folder / "imagesTs").glob("*_0000.nii.gz")
    }


def test_full_size_grid_is_one_millimetre():
    assert grid_spacing((155, 240, 240)) == (1.0, 1.0, 1.0)
    assert grid_spacing((96, 96, 96)) == (2.5, 2.5, 2.5)


def test_existing_dataset_and_id_clash_are_refused_and_nothing_half_written(tmp_path):
    cfg = SynthConfig(shape=(32, 32, 32), seed=0)
    synthesize_dataset(tmp_path, 7, "First", 1, 0, cfg, progress=False)
    with pytest.raises(FileExistsError):
        synthesize_dataset(tmp_path, 7, "First", 1, 0, cfg, progress=False)
    with pytest.raises(InputError, match="already used"):
        synthesize_dataset(tmp_path, 7, "Second", 1, 0, cfg, progress=False)
    with pytest.raises(InputError):
        synthesize_dataset(
            tmp_path, 8, "Bad", 1, 0, SynthConfig(shape=(32, 32, 32), phenotype="martian"), progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset007_First"]


def test_brats_layout_round_trips_through_the_converter(tmp_path):
    from nnunet_diffrefine.data.convert import convert_brats

    cfg = SynthConfig(shape=(32, 32, 32), seed=5)
    synthesize_dataset(
        tmp_path / "raw", 11, "Src", 2, 1, cfg, brats_layout=tmp_path / "brats", progress=False
    )
    cases = sorted(p.name for p in (tmp_path / "brats").iterdir())
    assert len(cases) == 3
    for m in MODALITIES:
        assert (tmp_path / "brats" / cases[0] / f"{cases[0]}-{m}.nii.gz").is_file()
    out = convert_brats(tmp_path / "brats", tmp_path / "raw", 12, "Converted")
    src, dst = tmp_path / "raw" / "Dataset011_Src", out
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        assert _digest(src / sub) == _digest(dst / sub)


def test_a_killed_run_leaves_a_partial_folder_that_the_next_run_removes(tmp_path):
    import subprocess
    import sys

    cfg = SynthConfig(shape=(32, 32, 32), seed=0)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = (
        tmp_path / f".Dataset007_First.partial-{int(dead.stdout)}-abc123"
    )  # as a SIGKILLed synth leaves it
    (stale / "imagesTr").mkdir(parents=True)
    running = tmp_path / f".Dataset007_First.partial-{os.getppid()}-def456"  # another run still writing
    running.mkdir()
    synthesize_dataset(tmp_path, 7, "First", 1, 0, cfg, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "Dataset007_First"]
