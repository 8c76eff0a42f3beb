"""The real-data benchmark's row table, its typed settings, the command line it writes into its results
and its Markdown page (no data needed)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_refinement_real as bench  # noqa: E402

from nnunet_diffrefine.benchmark import crossval  # noqa: E402
from nnunet_diffrefine.benchmark.crossval_markdown import markdown  # noqa: E402
from nnunet_diffrefine.errors import InputError  # noqa: E402


def test_every_refined_row_refines_a_base_row_and_each_has_an_ungated_twin():
    for row, spec in crossval.REFINED.items():
        assert spec.prior in crossval.BASES, row
        twin = crossval.REFINED[row if spec.force else row + crossval.UNGATED]
        assert twin.force and twin.folder_name == spec.folder_name and twin.prior == spec.prior
    defaults = bench.parse_args([])
    assert defaults.refined and not any(r.endswith(crossval.UNGATED) for r in defaults.refined)
    for a, b in crossval.PAIRS:
        assert a in crossval.REFINED and b in crossval.REFINED
        assert crossval.REFINED[a].prior == crossval.REFINED[b].prior
    for a, b in crossval.BASE_PAIRS:  # the other architectures (and refiners on them) against stock nnU-Net
        assert a == crossval.STOCK and b != a
        assert b in crossval.BASES or crossval.REFINED[b].prior != crossval.STOCK
    assert ("nnU-Net (stock)", "MedNeXt") in crossval.BASE_PAIRS
    assert ("nnU-Net (stock)", "CoMNeT (MedNeXt + CorrDiff)") in crossval.BASE_PAIRS
    ablation = crossval.REFINED["CorrDiff on nnU-Net, real priors only"]
    assert ablation.changes == {"perturbed_priors": 0.0} and ablation.folder_name == "corrdiff__realonly"
    from nnunet_diffrefine.refine.registry import refiner_settings

    assert refiner_settings("corrdiff", "cpu").perturbed_priors > 0, "the default trains on mixed priors"


def test_rows_trained_differently_never_share_a_refiner_folder_and_their_changes_are_settings():
    from nnunet_diffrefine.refine.registry import refiner_settings

    trained_as: dict[tuple[str, str], dict] = {}
    for row, spec in crossval.REFINED.items():
        changes = dict(spec.changes)
        if changes.get("checkpoint_priors") == crossval.KEPT_CHECKPOINTS:
            changes["checkpoint_priors"] = "checkpoint_epoch_30.pth,checkpoint_epoch_40.pth"
        refiner_settings(spec.refiner, "cpu", **changes)  # raises on an unknown or ill-typed setting
        key = (spec.prior, spec.folder_name)
        assert trained_as.setdefault(key, spec.changes) == spec.changes, f"{row} would reuse {key}'s refiner"
    banded = crossval.REFINED["MedSegDiff (cond) on nnU-Net, trained in a 3-voxel band"]
    assert banded.folder_name == "medsegdiff__band3"
    assert refiner_settings("medsegdiff", "cpu", **banded.changes).change_band == 3
    assert refiner_settings("medsegdiff", "cpu").change_band is None, "the band is off by default"


def test_the_written_command_line_reproduces_the_arguments():
    argv = ["--epochs", "40", "--bases", "nnU-Net (stock)", "--refined", "CorrDiff on nnU-Net"]
    argv += ["CorrDiff on nnU-Net (gate off)", "--gate-folds", "0", "--refiner-patch", "48", "48", "48"]
    argv += ["--run-folds", "0", "2", "--reference", "benchmarks/results/refinement_real_run8.json"]
    args = bench.parse_args(argv)
    line = bench.command_line(args)
    assert line.startswith("python benchmarks/bench_refinement_real.py ")
    again = bench.parse_args(shlex.split(line)[2:])
    assert vars(again) == vars(args)
    assert bench.command_line(bench.parse_args([])) == "python benchmarks/bench_refinement_real.py"
    s = bench.settings(args)
    assert s.refiner_patch == (48, 48, 48) and s.bases == ("nnU-Net (stock)",) and s.epochs == 40
    assert (
        s.run_folds == (0, 2)
        and s.folds_to_run() == [0, 2]
        and bench.settings(bench.parse_args([])).folds_to_run() == [0, 1, 2]
    )
    assert "work" not in s.to_json() and s.to_json()["refined"] == tuple(args.refined)


def test_the_realistic_phantom_mode_has_its_own_dataset_work_folder_and_results(tmp_path):
    args = bench.parse_args(["--data", "realistic-phantoms", "--num-phantoms", "6", "--work", str(tmp_path)])
    assert args.o.endswith("refinement_realistic_phantoms")
    b = crossval.CrossValBenchmark(bench.settings(args), bench.workspace(tmp_path))
    assert b.dataset_id != crossval.DATA["real"][0] and b.name.endswith("RealisticPhantoms")
    assert b.raw == tmp_path / "nnUNet_raw" / b.name
    b.check_real_data()  # needs no real cases
    line = bench.command_line(args)
    assert "--data realistic-phantoms --num-phantoms 6" in line and " -o " not in line


def test_missing_real_cases_and_bad_settings_are_one_clear_error(tmp_path):
    settings = crossval.CrossValSettings(work=tmp_path / "work", real_root=tmp_path / "absent")
    with pytest.raises(InputError, match="real BraTS cases are missing"):
        crossval.CrossValBenchmark(settings, bench.workspace(tmp_path / "work")).check_real_data()
    for bad in ({"folds": 1}, {"bases": ("nnU-Net",)}, {"refiner_set": ("corrdiff=4",)}, {"data": "mri"}):
        with pytest.raises(InputError):
            crossval.CrossValSettings(work=tmp_path, real_root=tmp_path, **bad)


@pytest.mark.parametrize(
    "name",
    [
        "refinement_real",
        "refinement_real_ddpm",
        "refinement_real_innercv",
        "refinement_real_medsegdiff_innercv",
        "refinement_real_medsegdiff_ablations",
        "refinement_real_control_vs_medsegdiff",
        "refinement_real_band_under_gate",
        "refinement_real_run8",
        "refinement_real_run8_bases",
        "refinement_realistic_phantoms",
    ],
)
def test_the_committed_pages_are_rendered_from_their_json(name):
    """``--report-only`` writes the same page from the same record: the committed .md is the committed
    .json rendered by today's code."""
    results = REPO / "benchmarks" / "results"
    record = json.loads((results / f"{name}.json").read_text())
    assert markdown(record) == (results / f"{name}.md").read_text()


def test_the_page_lists_each_folds_gate_decision_where_the_record_has_it():
    from nnunet_diffrefine.refine.gate import decide_gate

    gains = {
        f"case{i}": [[0.0, 0.0], [0.01, -0.01], [0.02, -0.02], [0.02, -0.03], [0.03, -0.05]] for i in range(6)
    }
    gate = decide_gate({c: np.asarray(g) + 0.001 * i for i, (c, g) in enumerate(gains.items())}, True)
    lines = gate.describe({"0": "WT", "1": "TC"})
    record = json.loads(
        (REPO / "benchmarks" / "results" / "refinement_real_medsegdiff_ablations.json").read_text()
    )
    row = next(iter(record["refiners"]))
    record["refiners"][row]["0"]["gate_decision"] = lines
    page = markdown(record)
    assert lines[0].startswith("WT: applied with lambda 1") and lines[1].startswith("TC: not applied")
    assert f"  - fold 0: {lines[0]}" in page and f"  - fold 0: {lines[1]}" in page


def test_rows_on_earlier_snapshots_need_the_snapshots_kept_and_name_the_missing_one(tmp_path):
    row = "MedSegDiff (cond) on nnU-Net, + earlier checkpoints' priors"
    assert row not in crossval.DEFAULT_REFINED, "a default run keeps no snapshots"
    with pytest.raises(InputError, match="--keep-checkpoints"):
        bench.settings(bench.parse_args(["--work", str(tmp_path), "--refined", row]))
    with pytest.raises(InputError, match="keep_checkpoints"):
        bench.settings(
            bench.parse_args(["--epochs", "50", "--keep-checkpoints", "50", "--work", str(tmp_path)])
        )
    argv = ["--epochs", "50", "--keep-checkpoints", "30", "40", "--refined", row, "--work", str(tmp_path)]
    b = crossval.CrossValBenchmark(bench.settings(bench.parse_args(argv)), bench.workspace(tmp_path))
    assert b.schedule.environment("nnUNetTrainerCustomSchedule")["DIFFREFINE_KEEP_CHECKPOINTS"] == "30,40"
    model = b.model("nnU-Net (stock)")
    for fold in (1, 2):
        (model / f"fold_{fold}").mkdir(parents=True)
        (model / f"fold_{fold}" / "checkpoint_epoch_30.pth").write_bytes(b"")
    (model / "fold_1" / "checkpoint_epoch_40.pth").write_bytes(b"")
    with pytest.raises(InputError, match="fold_2/checkpoint_epoch_40.pth does not exist"):
        b.training_changes(row, 0)
    (model / "fold_2" / "checkpoint_epoch_40.pth").write_bytes(b"")
    changes = b.training_changes(row, 0)
    assert changes["checkpoint_priors"] == "checkpoint_epoch_30.pth,checkpoint_epoch_40.pth"
    assert crossval.REFINED[row].folder_name == "medsegdiff__ckptkept"


def test_a_sitting_trains_and_refines_only_its_run_folds(tmp_path):
    argv = ["--work", str(tmp_path), "--bases", "Swin-UNETR", "--refined", "DDPM (cond) on Swin-UNETR"]
    b = crossval.CrossValBenchmark(
        bench.settings(bench.parse_args([*argv, "--run-folds", "1"])), bench.workspace(tmp_path)
    )
    names: list[str] = []
    b.stage = lambda name, done, run: names.append(name)
    b.check_real_data = lambda: None
    crossval.run_stages(b, lambda: None)
    assert [n for n in names if " fold " in n] == [
        "train Swin-UNETR fold 1",
        "train refiner DDPM (cond) on Swin-UNETR fold 1",
        "refine DDPM (cond) on Swin-UNETR fold 1",
    ]
    for bad in (["--run-folds", "3"], ["--run-folds", "-1"]):
        with pytest.raises(InputError, match="run_folds"):
            bench.settings(bench.parse_args([*argv, *bad]))
