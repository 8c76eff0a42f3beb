"""Bad input, across every command: exit code 1 or 2, exactly one error line naming the file or the
argument, no traceback, and nothing created or changed (one parametrised table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_diffrefine.cli.main import main

# (command line with {tmp} for the test folder, what the error line must name)
BAD_INPUTS = {
    "synth id 0": ("synth -d 0 -o {tmp}/raw", "-d"),
    "synth id 1000": ("synth -d 1000 -o {tmp}/raw", "-d"),
    "synth name with a path": ("synth -d 5 -n bad/name -o {tmp}/raw", "-n"),
    "synth lesion probability 2": ("synth -d 5 --second-lesion-prob 2 -o {tmp}/raw", "--second-lesion-prob"),
    "synth lesion probability -1": (
        "synth -d 5 --second-lesion-prob -1 -o {tmp}/raw",
        "--second-lesion-prob",
    ),
    "synth lesion probability nan": (
        "synth -d 5 --second-lesion-prob nan -o {tmp}/raw",
        "--second-lesion-prob",
    ),
    "synth no workers": ("synth -d 5 -np 0 -o {tmp}/raw", "-np"),
    "synth unknown phenotype": ("synth -d 5 --phenotype martian -o {tmp}/raw", "--phenotype"),
    "synth negative cases": ("synth -d 5 --num-train -1 -o {tmp}/raw", "--num-train"),
    "synth existing dataset": ("synth -d 7 -n Existing -o {tmp}/raw", "Dataset007_Existing"),
    "convert missing source": ("convert -i {tmp}/nowhere -d 5 -n A -o {tmp}/raw", "nowhere"),
    "convert source is a file": ("convert -i {tmp}/file.txt -d 5 -n A -o {tmp}/raw", "file.txt"),
    "convert id 0": ("convert -i {tmp}/brats -d 0 -n A -o {tmp}/raw", "--dataset-id"),
    "convert name with a path": ("convert -i {tmp}/brats -d 5 -n a/b -o {tmp}/raw", "--name"),
    "convert negative tolerance": (
        "convert -i {tmp}/brats -d 5 -n A --tolerance -1 -o {tmp}/raw",
        "--tolerance",
    ),
    "convert no case folders": ("convert -i {tmp}/brats -d 5 -n A -o {tmp}/raw", "brats"),
    "evaluate missing predictions": ("evaluate {tmp}/gt {tmp}/nowhere -djfile {tmp}/dataset.json", "nowhere"),
    "evaluate missing dataset.json": ("evaluate {tmp}/gt {tmp}/pred -djfile {tmp}/none.json", "none.json"),
    "evaluate unreadable dataset.json": ("evaluate {tmp}/gt {tmp}/pred -djfile {tmp}/file.txt", "file.txt"),
    "evaluate existing summary": (
        "evaluate {tmp}/gt {tmp}/pred -djfile {tmp}/dataset.json -o {tmp}/summary.json",
        "summary.json",
    ),
    "evaluate no workers": ("evaluate {tmp}/gt {tmp}/pred -djfile {tmp}/dataset.json -np 0", "-np"),
    "evaluate connectivity 7": (
        "evaluate {tmp}/gt {tmp}/pred -djfile {tmp}/dataset.json --lesion-connectivity 7",
        "--lesion-connectivity",
    ),
    "refine missing input": ("refine -i {tmp}/nowhere -o {tmp}/out -d 5 --images {tmp}/gt", "nowhere"),
    "refine steps 0": ("refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --steps 0", "--steps"),
    "refine steps -3": ("refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --steps -3", "--steps"),
    "refine no samples": (
        "refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --num-samples 0",
        "--num-samples",
    ),
    "refine negative min size": (
        "refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --pp-min-size -5",
        "--pp-min-size",
    ),
    "refine negative band": (
        "refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --change-band -2",
        "--change-band",
    ),
    "refine negative fold": ("refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt -f -1", "-f"),
    "refine unknown refiner": (
        "refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt --refiner magic",
        "--refiner",
    ),
    "refine no probabilities": ("refine -i {tmp}/pred -o {tmp}/out -d 5 --images {tmp}/gt", "CASE.npz"),
    "train-refiner no epochs": ("train-refiner -d 5 --epochs 0", "--epochs"),
    "train-refiner negative lr": ("train-refiner -d 5 --lr -1", "--lr"),
    "train-refiner bad --set": ("train-refiner -d 5 --set nonsense", "--set"),
    "train-refiner unknown dataset": ("train-refiner -d 5 --refiner corrdiff", "no dataset 5"),
    "plans unknown architecture": ("plans -d 5 --arch transformer9000", "--arch"),
    "plans unknown dataset": ("plans -d 5 --arch mednext", "Dataset005"),
    "benchmark unknown dataset": ("benchmark -d 5 -m MedNeXtTrainer", "Dataset005"),
    "report missing segmentation": (
        "report -s {tmp}/none.nii.gz -i {tmp}/a {tmp}/b {tmp}/c {tmp}/d -o {tmp}/rep --offline",
        "none.nii.gz",
    ),
    "report timeout 0": ("report -s {tmp}/none.nii.gz -i {tmp}/a -o {tmp}/rep --timeout 0", "--timeout"),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """Folders a user might point the commands at: empty nnU-Net folders, an existing dataset, a folder
    of predictions without probabilities, an existing summary, a text file."""
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    synthesize_dataset(tmp_path / "raw", 7, "Existing", 1, 0, SynthConfig(shape=(32, 32, 32)), progress=False)
    dataset = tmp_path / "raw" / "Dataset007_Existing"
    (tmp_path / "dataset.json").write_text((dataset / "dataset.json").read_text())
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    case = next((dataset / "labelsTr").glob("*.nii.gz"))
    for folder in ("gt", "pred"):
        (tmp_path / folder / case.name).write_bytes(case.read_bytes())
    (tmp_path / "summary.json").write_text(json.dumps({"mine": True}))
    (tmp_path / "file.txt").write_text("not what you think\n")
    (tmp_path / "brats").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_changes_nothing(name, workspace, capsys):
    command, named = BAD_INPUTS[name]
    before = _snapshot(workspace)
    capsys.readouterr()
    try:
        code = main(command.format(tmp=workspace).split())
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert code in (1, 2), (code, err)
    assert "Traceback" not in err and len(errors) == 1, err
    assert named in errors[0], errors[0]
    assert _snapshot(workspace) == before, "files were created or changed"
