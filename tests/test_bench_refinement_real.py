"""The real-data benchmark's row table and the command line it writes into its results (no data needed)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_refinement_real as bench  # noqa: E402


def test_every_refined_row_refines_a_base_row_and_each_has_an_ungated_twin():
    for row, spec in bench.REFINED.items():
        assert spec.prior in bench.BASES, row
        twin = bench.REFINED[row if spec.force else row + bench.UNGATED]
        assert twin.force and twin.folder_name == spec.folder_name and twin.prior == spec.prior
    defaults = bench.parse_args([])
    assert defaults.refined and not any(r.endswith(bench.UNGATED) for r in defaults.refined)
    for a, b in bench.PAIRS:
        assert a in bench.REFINED and b in bench.REFINED and bench.REFINED[a].prior == bench.REFINED[b].prior
    ablation = bench.REFINED["CorrDiff on nnU-Net, real priors only"]
    assert ablation.changes == {"perturbed_priors": 0.0} and ablation.folder_name == "corrdiff__realonly"
    from nnunet_diffrefine.refine.registry import refiner_settings

    assert refiner_settings("corrdiff", "cpu").perturbed_priors > 0, "the default trains on mixed priors"


def test_the_written_command_line_reproduces_the_arguments():
    argv = ["--epochs", "40", "--bases", "nnU-Net (stock)", "--refined", "CorrDiff on nnU-Net"]
    argv += ["CorrDiff on nnU-Net (gate off)", "--gate-folds", "0", "--refiner-patch", "48", "48", "48"]
    args = bench.parse_args(argv)
    line = bench.command_line(args)
    assert line.startswith("python benchmarks/bench_refinement_real.py ")
    again = bench.parse_args(shlex.split(line)[2:])
    assert vars(again) == vars(args)
    assert bench.command_line(bench.parse_args([])) == "python benchmarks/bench_refinement_real.py"


def test_the_realistic_phantom_mode_has_its_own_dataset_work_folder_and_results(tmp_path):
    args = bench.parse_args(["--data", "realistic-phantoms", "--num-phantoms", "6", "--work", str(tmp_path)])
    assert args.o.endswith("refinement_realistic_phantoms")
    b = bench.RealBenchmark(args)
    assert b.dataset_id != bench.DATA["real"][0] and b.name.endswith("RealisticPhantoms")
    b.check_real_data()  # needs no real cases
    line = bench.command_line(args)
    assert "--data realistic-phantoms --num-phantoms 6" in line and " -o " not in line
