"""Tests of the BraTS -> nnU-Net raw dataset converter (nnunet_diffrefine.data.convert, cli convert)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.data.brats import CHANNEL_NAMES, REGIONS_CLASS_ORDER
from nnunet_diffrefine.data.convert import REPORT_FILE, check_case, convert_brats, detect_layout
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import OutputExistsError

SHAPE = (8, 10, 12)  # numpy (z, y, x); SimpleITK size (12, 10, 8)
SPACING = (1.0, 1.0, 1.0)
ORIGIN = (90.0, 126.0, -72.0)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)

SUFFIXES = {
    "brats2023": ("-", ("t1n", "t1c", "t2w", "t2f"), 3),
    "brats2021": ("_", ("t1", "t1ce", "t2", "flair"), 4),
}


def _image(array: np.ndarray, spacing=SPACING) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(ORIGIN)
    img.SetDirection(DIRECTION)
    return img


def nested_seg(et_label: int) -> np.ndarray:
    """Edema box containing a core box (1) containing an enhancing box (``et_label``)."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[1:7, 1:9, 1:11] = 2
    seg[2:6, 2:8, 3:9] = 1
    seg[3:5, 3:7, 4:8] = et_label
    return seg


def make_case(
    root: Path,
    case: str,
    layout: str = "brats2023",
    labelled: bool = True,
    ending: str = ".nii.gz",
    seed: int = 0,
) -> Path:
    """Write one case folder: four random float images and, if ``labelled``, a nested-label segmentation."""
    sep, modalities, et_label = SUFFIXES[layout]
    folder = root / case
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for m in modalities:
        sitk.WriteImage(_image(rng.random(SHAPE, dtype=np.float32)), str(folder / f"{case}{sep}{m}{ending}"))
    if labelled:
        sitk.WriteImage(_image(nested_seg(et_label)), str(folder / f"{case}{sep}seg{ending}"))
    return folder


def gli(i: int) -> str:
    return f"BraTS-GLI-{i:05d}-000"


@pytest.fixture
def source2023(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_case(src, gli(0), seed=0)
    make_case(src, gli(1), seed=1)
    make_case(src, gli(2), labelled=False, seed=2)
    return src


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# ------------------------------------------------------------------------------------------ valid input


def test_convert_brats2023(source2023: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    before = snapshot(source2023)
    out = convert_brats(source2023, raw, 7, "BraTSGLI")

    assert out == raw / "Dataset007_BraTSGLI"
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset007_BraTSGLI"]  # no temporary folder left
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    expected = {"dataset.json", REPORT_FILE}
    for i in (0, 1):
        expected |= {f"imagesTr/{gli(i)}_{c:04d}.nii.gz" for c in range(4)} | {f"labelsTr/{gli(i)}.nii.gz"}
    expected |= {f"imagesTs/{gli(2)}_{c:04d}.nii.gz" for c in range(4)}
    assert names == expected

    for i, sub in ((0, "imagesTr"), (1, "imagesTr"), (2, "imagesTs")):
        for c, m in enumerate(("t1n", "t1c", "t2w", "t2f")):
            src = source2023 / gli(i) / f"{gli(i)}-{m}.nii.gz"
            assert (out / sub / f"{gli(i)}_{c:04d}.nii.gz").read_bytes() == src.read_bytes()
    seg_src = source2023 / gli(0) / f"{gli(0)}-seg.nii.gz"
    assert (out / "labelsTr" / f"{gli(0)}.nii.gz").read_bytes() == seg_src.read_bytes()

    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["numTraining"] == 2
    assert dataset["name"] == "BraTSGLI"
    assert dataset["channel_names"] == CHANNEL_NAMES
    assert dataset["labels"] == {
        "background": 0,
        "whole_tumor": [1, 2, 3],
        "tumor_core": [1, 3],
        "enhancing_tumor": [3],
    }
    assert dataset["regions_class_order"] == REGIONS_CLASS_ORDER
    assert dataset["file_ending"] == ".nii.gz"

    report = json.loads((out / REPORT_FILE).read_text())
    assert report["layout"] == "brats2023"
    assert report["train"] == [gli(0), gli(1)]
    assert report["test"] == [gli(2)]
    assert report["skipped"] == []

    assert snapshot(source2023) == before  # the source is only read


def test_convert_brats2021_maps_channels_and_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    case = "BraTS2021_00000"
    make_case(src, case, layout="brats2021")
    out = convert_brats(src, tmp_path / "raw", 21, "BraTS2021")

    folder = src / case
    for c, m in enumerate(("t1", "t1ce", "t2", "flair")):
        assert (out / "imagesTr" / f"{case}_{c:04d}.nii.gz").read_bytes() == (
            folder / f"{case}_{m}.nii.gz"
        ).read_bytes()
    assert (out / "imagesTr" / f"{case}_0001.nii.gz").read_bytes() == (
        folder / f"{case}_t1ce.nii.gz"
    ).read_bytes()
    assert (out / "imagesTr" / f"{case}_0003.nii.gz").read_bytes() == (
        folder / f"{case}_flair.nii.gz"
    ).read_bytes()

    label = sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz"))
    assert label.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), nested_seg(3))
    assert label.GetSpacing() == SPACING
    np.testing.assert_allclose(label.GetOrigin(), ORIGIN)
    np.testing.assert_allclose(label.GetDirection(), DIRECTION)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["layout"] == "brats2021"
    assert report["label_map"] == {"4": 3}


def test_nii_sources_are_written_compressed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_case(src, gli(0), ending=".nii")
    out = convert_brats(src, tmp_path / "raw", 3, "Nii")
    for c, m in enumerate(("t1n", "t1c", "t2w", "t2f")):
        converted = out / "imagesTr" / f"{gli(0)}_{c:04d}.nii.gz"
        np.testing.assert_array_equal(read(converted), read(src / gli(0) / f"{gli(0)}-{m}.nii"))
    np.testing.assert_array_equal(read(out / "labelsTr" / f"{gli(0)}.nii.gz"), nested_seg(3))


def test_an_uncompressed_nifti_named_nii_gz_is_read_by_content(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_case(src, gli(0), ending=".nii")
    for path in (src / gli(0)).glob("*.nii"):
        path.rename(path.with_name(path.name + ".gz"))  # uncompressed bytes, .nii.gz name
    out = convert_brats(src, tmp_path / "raw", 3, "Plain")
    assert json.loads((out / REPORT_FILE).read_text())["skipped"] == []
    np.testing.assert_array_equal(read(out / "labelsTr" / f"{gli(0)}.nii.gz"), nested_seg(3))


def test_validation_in_worker_processes(source2023: Path, tmp_path: Path) -> None:
    (source2023 / gli(1) / f"{gli(1)}-t2f.nii.gz").unlink()
    out = convert_brats(source2023, tmp_path / "raw", 8, "Workers", num_processes=2)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["train"] == [gli(0)]
    assert report["test"] == [gli(2)]
    assert [s["case"] for s in report["skipped"]] == [gli(1)]


# ------------------------------------------------------------------------------------------ bad cases


def _break_missing(folder: Path) -> None:
    (folder / f"{folder.name}-t2f.nii.gz").unlink()


def _break_spacing(folder: Path) -> None:
    path = folder / f"{folder.name}-t1c.nii.gz"
    sitk.WriteImage(_image(read(path), spacing=(1.0, 1.0, 2.0)), str(path))


def _break_label(folder: Path) -> None:
    sitk.WriteImage(_image(nested_seg(4)), str(folder / f"{folder.name}-seg.nii.gz"))


def _break_unreadable(folder: Path) -> None:
    (folder / f"{folder.name}-t2w.nii.gz").write_bytes(np.random.default_rng(5).bytes(3000))


def _break_truncated(folder: Path) -> None:
    path = folder / f"{folder.name}-t2w.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _break_short_payload(folder: Path) -> None:
    """A valid gzip stream holding only half of the voxel data (ITK reads it without complaint)."""
    path = folder / f"{folder.name}-t1c.nii.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) // 2]))


def _break_2d(folder: Path) -> None:
    path = folder / f"{folder.name}-t1n.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 12), dtype=np.float32)), str(path))


def _break_directory(folder: Path) -> None:
    path = folder / f"{folder.name}-t2w.nii.gz"
    path.unlink()
    path.mkdir()


def _break_empty(folder: Path) -> None:
    (folder / f"{folder.name}-t2w.nii.gz").write_bytes(b"")


BROKEN = {
    "directory": (_break_directory, "{case}: {case}-t2w.nii.gz is a directory, not an image file"),
    "empty": (_break_empty, "{case}: {case}-t2w.nii.gz is an empty file (0 bytes)"),
    "missing": (_break_missing, "{case}: missing t2f (expected {folder}/{case}-t2f.nii.gz)"),
    "spacing": (_break_spacing, "{case}: spacing of -t1c (1.0, 1.0, 2.0) differs from -t1n (1.0, 1.0, 1.0)"),
    "label": (
        _break_label,
        "{case}: {case}-seg.nii.gz contains label 4, not a BraTS 2023 adult glioma (GLI) label (allowed 0,1,2,3)",
    ),
    "unreadable": (_break_unreadable, "{case}: {case}-t2w.nii.gz is unreadable: "),
    "truncated": (_break_truncated, "{case}: {case}-t2w.nii.gz is unreadable: "),
    "short": (_break_short_payload, "{case}: {case}-t1c.nii.gz is unreadable: file is truncated ("),
    "2d": (_break_2d, "{case}: {case}-t1n.nii.gz is 2D, expected a 3D image"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_bad_case_is_skipped_with_reason(kind: str, source2023: Path, tmp_path: Path) -> None:
    breaker, message = BROKEN[kind]
    folder = source2023 / gli(1)
    breaker(folder)
    expected = message.format(case=gli(1), folder=folder)

    challenge = "brats2023-gli" if kind == "label" else "auto"  # label 4 alone is never guessed
    out = convert_brats(source2023, tmp_path / "raw", 9, "Broken", challenge=challenge)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["train"] == [gli(0)]
    assert report["test"] == [gli(2)]
    assert len(report["skipped"]) == 1
    assert report["skipped"][0]["case"] == gli(1)
    reason = report["skipped"][0]["reason"]
    assert reason.startswith(expected), reason
    assert "\n" not in reason
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1
    assert not any(gli(1) in p.name for p in out.rglob("*"))


def test_label_3_in_brats2021_case_is_rejected(tmp_path: Path) -> None:
    folder = make_case(tmp_path / "src", "BraTS2021_00001", layout="brats2021")
    sitk.WriteImage(_image(nested_seg(3)), str(folder / "BraTS2021_00001_seg.nii.gz"))
    result = check_case(folder, "brats2021")
    assert result.reason == (
        "BraTS2021_00001: BraTS2021_00001_seg.nii.gz contains label 3, not a BraTS 2021 label (allowed 0,1,2,4)"
    )


def test_strict_fails_and_writes_nothing(source2023: Path, tmp_path: Path) -> None:
    _break_label(source2023 / gli(1))
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(InputError, match="contains label 4"):
        convert_brats(source2023, raw, 10, "Strict", strict=True, challenge="brats2023-gli")
    assert list(raw.iterdir()) == []


def test_label_4_is_never_guessed(source2023: Path, tmp_path: Path) -> None:
    _break_label(source2023 / gli(1))
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(
        InputError, match=rf"label 4 is in the label files \({gli(1)}\).*--challenge brats2024-gli"
    ):
        convert_brats(source2023, raw, 10, "Guess")
    assert list(raw.iterdir()) == []


def test_a_2024_post_treatment_case_keeps_its_resection_cavity(source2023: Path, tmp_path: Path) -> None:
    _break_label(source2023 / gli(1))  # label 4: the resection cavity in BraTS 2024 GLI
    out = convert_brats(source2023, tmp_path / "raw", 12, "PostOp", challenge="brats2024-gli")
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["challenge"] == "brats2024-gli" and report["num_skipped"] == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["brats_convention"] == "brats2024-gli"
    assert dataset["labels"]["resection_cavity"] == [4] and dataset["labels"]["tumor_core"] == [1, 3]
    assert dataset["regions_class_order"] == [2, 1, 3, 4]
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"{gli(1)}.nii.gz")))
    assert 4 in seg


@pytest.mark.parametrize(
    ("prefix", "labels", "expected"),
    [
        ("BraTS-GLI", {0, 1, 2, 3}, "brats2023-gli"),
        ("BraTS-MET", {0, 1, 2, 3}, "brats2023-met"),
        ("BraTS-MEN", {0, 2, 3}, "brats2023-men"),
        ("BraTS-GoAT", {0, 1, 2, 3}, "brats2024-goat"),
        ("Patient", {0, 1, 2, 3}, "brats2023-gli"),
        ("BraTS-PED", {0, 1, 2, 3}, "--challenge brats2023-ped or brats2024-ped"),
        ("BraTS-PED", {0, 1, 2, 4}, "--challenge brats2024-ped "),
        ("BraTS-GLI", {0, 1, 2, 3, 4}, "--challenge brats2024-gli "),
        ("Patient", {0, 1, 2, 3, 4}, "--challenge brats2024-gli or brats2024-met or brats2024-ped "),
    ],
)
def test_challenge_detection_decides_only_where_the_data_do(prefix, labels, expected) -> None:
    from nnunet_diffrefine.data.challenges import LAYOUT_2023, detect_convention

    cases = [f"{prefix}-0000{i}-000" for i in range(3)]
    if expected.startswith("--"):
        with pytest.raises(InputError, match=expected):
            detect_convention(LAYOUT_2023, cases, {cases[0]: labels})
    else:
        assert detect_convention(LAYOUT_2023, cases, {cases[0]: labels}).key == expected
    with pytest.raises(InputError, match="mixes cases of challenges that score lesions differently"):
        detect_convention(LAYOUT_2023, ["BraTS-GLI-00001-000", "BraTS-MET-00001-000"], {})
    mixed = ["BraTS-GLI-00001-000", "BraTS-SSA-00001-000", "BraTS-GoAT-00001-000"]  # they score alike
    assert detect_convention(LAYOUT_2023, mixed, {}).key == "brats2023-gli"
    assert detect_convention(LAYOUT_2023, ["BraTS-MEN-RT-0001-1"], {}).key == "brats2023-gli"  # not MEN


def test_failure_while_writing_leaves_nothing(source2023: Path, tmp_path: Path, monkeypatch) -> None:
    import nnunet_diffrefine.data.convert as convert

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(convert, "write_json", fail)
    raw = tmp_path / "raw"
    with pytest.raises(OSError, match="disk full"):
        convert_brats(source2023, raw, 10, "Fails")
    assert list(raw.iterdir()) == []


def test_no_valid_case_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _break_missing(make_case(src, gli(0)))
    with pytest.raises(InputError, match="no valid case"):
        convert_brats(src, tmp_path / "raw", 11, "Empty")
    assert not (tmp_path / "raw" / "Dataset011_Empty").exists()


# ------------------------------------------------------------------------------------------ output folder


def test_existing_dataset_refused_without_overwrite(source2023: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    existing = raw / "Dataset012_Twice"
    existing.mkdir(parents=True)
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        convert_brats(source2023, raw, 12, "Twice")
    assert (existing / "keep.txt").read_text() == "mine"

    out = convert_brats(source2023, raw, 12, "Twice", overwrite=True)
    assert not (out / "keep.txt").exists()
    assert (out / "dataset.json").is_file()
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset012_Twice"]


def test_dataset_id_used_by_another_name_is_refused(source2023: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "Dataset013_Other").mkdir(parents=True)
    with pytest.raises(InputError, match="Dataset013_Other"):
        convert_brats(source2023, raw, 13, "Mine", overwrite=True)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset013_Other"]


def test_output_inside_source_is_refused(source2023: Path) -> None:
    with pytest.raises(InputError, match="must not contain each other"):
        convert_brats(source2023, source2023 / "raw", 14, "Inside")


def test_raw_root_from_environment(source2023: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The command reads nnUNet_raw when -o is not given; the library takes the folder as an argument."""
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "envraw"))
    assert main(["convert", "-i", str(source2023), "-d", "15", "-n", "Env"]) == 0
    assert (tmp_path / "envraw" / "Dataset015_Env" / "dataset.json").is_file()
    monkeypatch.delenv("nnUNet_raw")
    assert main(["convert", "-i", str(source2023), "-d", "16", "-n", "NoEnv"]) == 1
    assert "nnUNet_raw" in capsys.readouterr().err
    with pytest.raises(InputError, match="nnUNet_raw"):
        convert_brats(source2023, None, 16, "NoEnv")


def test_hardlink_shares_inodes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src21 = tmp_path / "src21"
    make_case(src, gli(0))
    make_case(src21, "BraTS2021_00000", layout="brats2021")

    out = convert_brats(src, tmp_path / "raw", 17, "Linked", hardlink=True)
    for c, m in enumerate(("t1n", "t1c", "t2w", "t2f", "seg")):
        dst = (
            out
            / ("labelsTr" if m == "seg" else "imagesTr")
            / (gli(0) + (".nii.gz" if m == "seg" else f"_{c:04d}.nii.gz"))
        )
        assert os.stat(dst).st_ino == os.stat(src / gli(0) / f"{gli(0)}-{m}.nii.gz").st_ino

    before = snapshot(src21)
    out21 = convert_brats(src21, tmp_path / "raw", 18, "Linked21", hardlink=True)
    case = "BraTS2021_00000"
    assert (
        os.stat(out21 / "imagesTr" / f"{case}_0001.nii.gz").st_ino
        == os.stat(src21 / case / f"{case}_t1ce.nii.gz").st_ino
    )
    # a segmentation whose labels change is rewritten, never linked
    assert (
        os.stat(out21 / "labelsTr" / f"{case}.nii.gz").st_ino
        != os.stat(src21 / case / f"{case}_seg.nii.gz").st_ino
    )
    assert snapshot(src21) == before


def test_hardlink_falls_back_to_copy(source2023: Path, tmp_path: Path, monkeypatch) -> None:
    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    with pytest.warns(RuntimeWarning, match="copying"):
        out = convert_brats(source2023, tmp_path / "raw", 19, "Fallback", hardlink=True)
    src = source2023 / gli(0) / f"{gli(0)}-t1n.nii.gz"
    assert (out / "imagesTr" / f"{gli(0)}_0000.nii.gz").read_bytes() == src.read_bytes()
    assert json.loads((out / REPORT_FILE).read_text())["hardlinked"] is False


# ------------------------------------------------------------------------------------------ layout detection


def test_detect_layout(source2023: Path, tmp_path: Path) -> None:
    assert detect_layout(source2023) == "brats2023"
    src21 = tmp_path / "src21"
    make_case(src21, "BraTS2021_00000", layout="brats2021", labelled=False)
    assert detect_layout(src21) == "brats2021"

    make_case(source2023, "BraTS2021_00001", layout="brats2021")
    with pytest.raises(InputError, match="mixes"):
        detect_layout(source2023)

    (src21 / "notes").mkdir()
    (src21 / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match="notes"):
        detect_layout(src21)


def test_explicit_layout_skips_other_naming(source2023: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no valid case"):
        convert_brats(source2023, tmp_path / "raw", 20, "Wrong", layout="brats2021")
    make_case(source2023, "BraTS2021_00001", layout="brats2021")
    out = convert_brats(source2023, tmp_path / "raw", 20, "Explicit", layout="brats2023")
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["train"] == [gli(0), gli(1)]
    assert [s["case"] for s in report["skipped"]] == ["BraTS2021_00001"]
    assert "missing t1n, t1c, t2w, t2f" in report["skipped"][0]["reason"]


# ------------------------------------------------------------------------------------------ command line


@pytest.fixture
def only_convert_subcommand(monkeypatch) -> None:
    """Build the parser with the convert subcommand only, independent of the other subcommands' state."""
    import nnunet_diffrefine.cli.main as cli_main

    monkeypatch.setattr(cli_main, "SUBCOMMANDS", {"convert": "convert"})


@pytest.mark.usefixtures("only_convert_subcommand")
def test_cli_convert(source2023: Path, tmp_path: Path, capsys) -> None:
    _break_missing(source2023 / gli(1))
    raw = tmp_path / "raw"
    rc = main(["convert", "-i", str(source2023), "-d", "22", "-n", "Cli", "-o", str(raw), "-np", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 training cases, 1 test cases, 1 skipped" in out
    assert "missing t2f" in out
    assert "regions_class_order" in json.loads((raw / "Dataset022_Cli" / "dataset.json").read_text())

    rc = main(["convert", "-i", str(source2023), "-d", "24", "-n", "Labels", "-o", str(raw), "--label-based"])
    assert rc == 0
    dataset_json = json.loads((raw / "Dataset024_Labels" / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "NC": 1, "ED": 2, "ET": 3}
    assert "regions_class_order" not in dataset_json


@pytest.mark.usefixtures("only_convert_subcommand")
def test_cli_bad_source_one_error_line(tmp_path: Path, capsys) -> None:
    rc = main(["convert", "-i", str(tmp_path / "nope"), "-d", "23", "-n", "Bad", "-o", str(tmp_path / "raw")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("nnunet-diffrefine convert: error: ")
    assert "nope" in err
    assert not (tmp_path / "raw").exists()


@pytest.mark.usefixtures("only_convert_subcommand")
def test_cli_strict_one_error_line(source2023: Path, tmp_path: Path, capsys) -> None:
    _break_unreadable(source2023 / gli(0))
    _break_spacing(source2023 / gli(1))
    rc = main(
        ["convert", "-i", str(source2023), "-d", "24", "-n", "S", "-o", str(tmp_path / "raw"), "--strict"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "2 of 3 cases are invalid" in err


# ------------------------------------------------------------------------------------------ nnU-Net


@pytest.mark.slow  # about 8 s: nnU-Net spawns a worker that imports torch
def test_nnunet_verify_dataset_integrity(source2023: Path, tmp_path: Path) -> None:
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    out = convert_brats(source2023, tmp_path / "raw", 25, "Verified")
    verify.verify_dataset_integrity(str(out), num_processes=1)
