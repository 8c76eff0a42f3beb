"""The fair refinement benchmark: do the diffusion refiners improve priors that learned?

Usage: python benchmarks/bench_refinement.py [--work DIR] [--seed 0] [--phenotype adult]
       [--profile realistic|classic] [--num-train 24]
       [--num-test 16] [--shape 48] [--folds 3] [--epochs 40] [--iters 25] [--refiner-epochs 20]
       [--refiner-iters 25] [--uncertainty-samples 4] [--intensity-samples N]
       [-o benchmarks/results/refinement_realistic]

The default profile is ``realistic`` (phantoms calibrated against real BraTS cases: a per-voxel
classifier and stock nnU-Net score on them as on the real cases); the committed
``benchmarks/results/refinement.{json,md}`` is a run of the ``classic`` profile (``--profile classic``,
also for ``--rerender``).

The protocol, its rows, stages and results are :mod:`nnunet_diffrefine.benchmark.heldout` (held-out
test phantoms, out-of-fold training data for every refiner, no post-processing, paired statistics, the
protocol checked from the files written); this script takes the flags and writes ``-o``.json / .md.

Every stage is skipped when its outputs exist, so an interrupted run resumes (trainings resume at
their last checkpoint); ``state.json`` in the work folder keeps each stage's wall time. Writes
``refinement.json`` (``rows``, ``comparisons``, ``seed``, ``phenotype``, ``commit``, every setting,
stage times) and ``refinement.md`` to ``-o``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _setup import workspace, write_results

from nnunet_diffrefine.benchmark.heldout import (
    BASES,
    HeldOutBenchmark,
    HeldOutSettings,
    results_record,
    run_stages,
    targets,
)
from nnunet_diffrefine.benchmark.heldout_markdown import markdown
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.workspace import exit_on_sigterm, git_commit

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--work",
        help="work folder (nnU-Net folders inside; kept between sessions so that a run resumes); "
        "default ~/.cache/nnunet-diffrefine/bench_refinement/seed<S>_<phenotype>",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phenotype", choices=["adult", "pediatric", "mixed"], default="adult")
    p.add_argument(
        "--profile",
        choices=["classic", "realistic"],
        default="realistic",
        help="synthesis profile (default realistic: phantoms as hard as real scans, a 56 x 68 x 60 crop at "
        "2.5 mm, --shape ignored; classic: the older, voxel-separable phantoms)",
    )
    p.add_argument("--num-train", type=int, default=24)
    p.add_argument("--num-test", type=int, default=16)
    p.add_argument("--shape", type=int, default=48)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40, help="base models: epochs of --iters iterations")
    p.add_argument("--iters", type=int, default=25)
    p.add_argument("--refiner-epochs", type=int, default=20)
    p.add_argument("--refiner-iters", type=int, default=25)
    p.add_argument("--uncertainty-samples", type=int, default=4)
    p.add_argument(
        "--intensity-samples",
        type=int,
        default=None,
        help="foreground intensities nnU-Net's fingerprint draws per channel in total (default: nnU-Net's "
        "10^8; fewer change only the statistics CT normalisation reads, not these MRI plans)",
    )
    p.add_argument(
        "--bases",
        nargs="+",
        choices=list(BASES),
        default=list(BASES),
        help="base rows to run, in order (default: all)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only rewrite the results from what the work folder holds"
    )
    p.add_argument(
        "--rerender",
        action="store_true",
        help="only rewrite -o.md and the targets from the committed -o.json (no work folder needed)",
    )
    p.add_argument(
        "-o",
        default=None,
        help="results file without suffix (default: benchmarks/results/refinement_realistic, or "
        "benchmarks/results/refinement with --profile classic: the committed classic run)",
    )
    args = p.parse_args(argv)
    if args.o is None:
        name = "refinement" if args.profile == "classic" else f"refinement_{args.profile}"
        args.o = str(REPO / "benchmarks" / "results" / name)
    return args


def settings(a: argparse.Namespace) -> HeldOutSettings:
    """The typed settings of the run the flags describe (work folder: ``--work`` or the user cache)."""
    suffix = "" if a.profile == "classic" else f"_{a.profile}"
    default = (
        Path.home()
        / ".cache"
        / "nnunet-diffrefine"
        / "bench_refinement"
        / f"seed{a.seed}_{a.phenotype}{suffix}"
    )
    return HeldOutSettings(
        work=Path(a.work) if a.work else default,
        seed=a.seed,
        phenotype=a.phenotype,
        profile=a.profile,
        num_train=a.num_train,
        num_test=a.num_test,
        shape=a.shape,
        folds=a.folds,
        epochs=a.epochs,
        iters=a.iters,
        refiner_epochs=a.refiner_epochs,
        refiner_iters=a.refiner_iters,
        uncertainty_samples=a.uncertainty_samples,
        intensity_samples=a.intensity_samples,
        bases=tuple(a.bases),
    )


def rerender(json_file: Path) -> None:
    """Rewrite the markdown and the targets of committed results from their JSON alone (no work folder):
    the numbers stay those measured; only the presentation and the target rules are today's."""
    if not json_file.is_file():
        raise SystemExit(
            f"bench_refinement: {json_file} does not exist (--rerender rewrites results written before)"
        )
    record = json.loads(json_file.read_text())
    rows = {r["name"]: r for r in record["rows"]}
    record["targets"] = targets(rows, record["refiners"])
    write_results(record, json_file.with_suffix(""), markdown(record), record["protocol_problems"])


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.rerender:
        rerender(Path(a.o).with_suffix(".json"))
        return
    try:
        s = settings(a)
        benchmark = HeldOutBenchmark(s, workspace(s.work, nnUNet_def_n_proc="1"), REPO)
    except InputError as e:
        raise SystemExit(f"bench_refinement: {e}") from None

    # the commit at the start; with an editable install, later edits reach the stages that start after
    # them, so a long run should run from a snapshot of the code (a git worktree on PYTHONPATH)
    started_at = git_commit(REPO)

    def report() -> None:
        record = results_record(benchmark, started_at)
        write_results(record, Path(a.o), markdown(record), record["protocol_problems"])

    if a.report_only:
        report()
    else:
        exit_on_sigterm()  # a sitting ended by kill still counts in its stage's wall time
        run_stages(benchmark, report)


if __name__ == "__main__":
    main()
