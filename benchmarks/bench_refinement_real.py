"""The refinement benchmark on real MRI: the BraTS 2018 cases in ``shared/real/brats2018``.

Usage: python benchmarks/bench_refinement_real.py [--data real|realistic-phantoms] [--real-root DIR]
       [--num-phantoms 15] [--seed 0] [--work DIR] [--folds 3] [--run-folds K ...]
       [--spacing 2.0] [--epochs 80] [--iters 25] [--bases ROW ...] [--refined ROW ...]
       [--refiner-epochs 20] [--refiner-iters 25] [--refiner-patch Z Y X] [--refiner-set R:KEY=VALUE ...]
       [--gate-folds 2] [--reference JSON] [--report-only] [-o benchmarks/results/refinement_real]

The protocol, its rows and stages are :mod:`nnunet_diffrefine.benchmark.crossval` (cross-validated
stacking: every case gets an out-of-fold prior, and the refiner applied to it trained only on the other
folds' out-of-fold priors; no post-processing; paired bootstrap CIs and Wilcoxon p over all cases);
this script takes the flags, runs the stages (each skipped when its outputs exist; trainings resume) and
writes ``-o``.json / .md after each base model and each refined row. ``--reference`` adds the rows of an
earlier run of the same protocol and folds from its committed JSON (per-case scores), so that a row
trained in a later sitting is paired with them (:mod:`nnunet_diffrefine.benchmark.reference`).

Data: BraTS challenge data (Menze et al., IEEE TMI 2015; Bakas et al., Scientific Data 2017; Bakas et al.,
arXiv:1811.02629). Nothing derived from them is written into the repository except the scores in
``-o``.

``--data realistic-phantoms`` runs the same protocol on adult phantoms of the ``realistic`` synthesis
profile (2 mm, 140 x 170 x 150 mm around the brain), written instead of converted: whether a base
model scores on them as on the real cases under the same CPU budget (results
``benchmarks/results/refinement_realistic_phantoms``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _setup import workspace, write_results

from nnunet_diffrefine.benchmark.crossval import (
    BASES,
    DATA,
    DEFAULT_REFINED,
    REFINED,
    UNGATED,
    CrossValBenchmark,
    CrossValSettings,
    results_record,
    run_stages,
)
from nnunet_diffrefine.benchmark.crossval_markdown import markdown
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.workspace import exit_on_sigterm

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_ROOT = REPO.parent / "shared" / "real" / "brats2018"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--real-root",
        default=str(DEFAULT_REAL_ROOT),
        help="folder of the real BraTS cases, one sub-folder per case (default: %(default)s)",
    )
    p.add_argument(
        "--work",
        help="work folder (nnU-Net folders inside, kept so that a run resumes); "
        "default ~/.cache/nnunet-diffrefine/bench_refinement_real",
    )
    p.add_argument(
        "--data",
        choices=list(DATA),
        default="real",
        help="real: the BraTS 2018 cases of --real-root; realistic-phantoms: as many adult phantoms of the "
        "realistic synthesis profile (2 mm, seed --seed), to check them against the real cases under the "
        "same protocol and CPU budget (default: real)",
    )
    p.add_argument("--num-phantoms", type=int, default=15, help="with --data realistic-phantoms")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument(
        "--run-folds",
        type=int,
        nargs="+",
        metavar="K",
        help="train and refine only these folds in this sitting (a model too slow for one sitting: the other "
        "folds come from a later run, which names this run's results as --reference; default: every fold)",
    )
    p.add_argument("--spacing", type=float, default=2.0, help="isotropic target spacing in mm")
    p.add_argument("--epochs", type=int, default=80, help="base models: epochs of --iters iterations")
    p.add_argument("--iters", type=int, default=25)
    p.add_argument("--refiner-epochs", type=int, default=20)
    p.add_argument("--refiner-iters", type=int, default=25)
    p.add_argument(
        "--refiner-patch",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="refiners' training patch and inference window in voxels (default: the base model's patch)",
    )
    p.add_argument(
        "--refiner-set",
        nargs="*",
        default=[],
        metavar="REFINER:KEY=VALUE",
        help="a setting of one refiner for every row that uses it, e.g. corrdiff:inference_steps=4",
    )
    p.add_argument(
        "--gate-folds",
        type=int,
        default=2,
        help="inner cross-validation folds that decide where each refiner is applied (0: its early-stopping "
        "cases decide)",
    )
    p.add_argument(
        "--keep-checkpoints",
        nargs="*",
        type=int,
        default=[],
        metavar="EPOCH",
        help="base models also keep their weights after these epochs (checkpoint_epoch_N.pth): the priors of "
        "the rows '..., + earlier checkpoints' priors'",
    )
    p.add_argument("--bases", nargs="+", choices=list(BASES), default=list(BASES)[:3])
    p.add_argument(
        "--refined",
        nargs="*",
        choices=list(REFINED),
        default=list(DEFAULT_REFINED),
        help=f"refined rows (each also as '<row>{UNGATED}': applied everywhere, whatever its gate says)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    p.add_argument(
        "--reference",
        metavar="JSON",
        help="results JSON of an earlier run of the same protocol and folds (e.g. "
        "benchmarks/results/refinement_real_run8.json): its rows that this run does not score are added to "
        "the results and paired with this run's by case; refused when any protocol setting differs",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only rewrite the results from what the work folder holds"
    )
    p.add_argument("-o", default=None, help="results file without suffix (default: by --data)")
    args = p.parse_args(argv)
    if args.o is None:
        args.o = str(REPO / "benchmarks" / "results" / DATA[args.data][3])
    return args


def settings(a: argparse.Namespace) -> CrossValSettings:
    """The typed settings of the run the flags describe (work folder: ``--work`` or the user cache)."""
    work = Path(a.work) if a.work else Path.home() / ".cache" / "nnunet-diffrefine" / DATA[a.data][2]
    return CrossValSettings(
        work=work,
        real_root=Path(a.real_root),
        data=a.data,
        num_phantoms=a.num_phantoms,
        folds=a.folds,
        spacing=a.spacing,
        epochs=a.epochs,
        iters=a.iters,
        refiner_epochs=a.refiner_epochs,
        refiner_iters=a.refiner_iters,
        refiner_patch=tuple(a.refiner_patch) if a.refiner_patch else None,
        refiner_set=tuple(a.refiner_set),
        gate_folds=a.gate_folds,
        keep_checkpoints=tuple(a.keep_checkpoints),
        bases=tuple(a.bases),
        refined=tuple(a.refined),
        seed=a.seed,
        run_folds=tuple(a.run_folds) if a.run_folds else None,
    )


def command_line(a: argparse.Namespace) -> str:
    """The command that reproduces this run (the options that differ from the defaults)."""
    defaults = {**vars(parse_args(["--data", a.data])), "data": "real"}
    parts = ["python benchmarks/bench_refinement_real.py"]
    for key, value in vars(a).items():
        if key in ("report_only", "work", "real_root") or value == defaults[key]:
            continue
        flag = "-o" if key == "o" else "--" + key.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        parts.append(flag + "".join(f' "{v}"' if " " in str(v) else f" {v}" for v in values))
    return " ".join(parts)


def write_report(b: CrossValBenchmark, a: argparse.Namespace) -> None:
    """Score every finished row and write ``-o``.json / .md."""
    record = results_record(b, command_line(a), Path(a.reference) if a.reference else None)
    if record is None:
        print("nothing to report yet")
        return
    write_results(record, Path(a.o), markdown(record), record["protocol_problems"])


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    try:
        s = settings(a)
        benchmark = CrossValBenchmark(s, workspace(s.work, nnUNet_def_n_proc="1"), REPO)
        if a.report_only:
            write_report(benchmark, a)
        else:
            exit_on_sigterm()  # a sitting ended by kill still counts in its stage's wall time
            run_stages(benchmark, lambda: write_report(benchmark, a))
    except InputError as e:
        raise SystemExit(f"bench_refinement_real: {e}") from None


if __name__ == "__main__":
    main()
