"""The fair refinement benchmark: do the diffusion refiners improve priors that learned?

Usage: python benchmarks/bench_refinement.py [--work DIR] [--seed 0] [--phenotype adult]
       [--profile realistic|classic] [--num-train 24]
       [--num-test 16] [--shape 48] [--folds 3] [--epochs 40] [--iters 25] [--refiner-epochs 20]
       [--refiner-iters 25] [--uncertainty-samples 4] [-o benchmarks/results/refinement_realistic]

The default profile is ``realistic`` (phantoms calibrated against real BraTS cases: a per-voxel
classifier and stock nnU-Net score on them as on the real cases); the committed
``benchmarks/results/refinement.{json,md}`` is a run of the ``classic`` profile (``--profile classic``,
also for ``--rerender``).

The protocol (every rule of "Measuring refinement honestly": held-out test cases, out-of-fold training
data for every refiner, no post-processing, paired statistics):

1. A phantom training set and a held-out test split from ``--seed`` and ``--phenotype``.
2. Every base model (stock nnU-Net, Res U-Net, Swin-UNETR, SegResNet, MedNeXt) is trained with the
   same K-fold split (``splits_final.json``, K = ``--folds``) and ``--npz``, under one CPU schedule
   (:class:`nnunet_diffrefine.training.cpu_schedule.CPUSchedule`: the same iterations for every model).
3. Each refiner trains once per prior on the out-of-fold probabilities of *all* training cases (every
   case predicted by the fold that did not train on it: nnU-Net's final validation, with mirroring).
4. The test split is predicted by each fold with mirroring (one fold per prior, as the out-of-fold
   priors were made). The prior row is the fold ensemble of those predictions (nnU-Net's ensemble: what
   ``nnUNetv2_predict -f 0 1 2`` gives); a refined row refines each fold's prediction, then ensembles
   the refined folds. So refiners only ever see priors predicted as their training priors were.
5. No row is post-processed (nnU-Net's thresholding only), so every row is treated alike.
6. Per case, mean Dice and HD95 over TC/WT/ET; for every refined row the paired difference to its
   prior (bootstrap 95 % CI, Wilcoxon signed-rank p); conditioned vs scratch likewise; MedSegDiff's
   chosen fusion weight and an ablation row with the highway alone (w = 0); the AUROC of each refiner's
   per-voxel standard deviation (``--uncertainty-samples`` samples, fold 0's priors) for its wrong voxels.
7. The protocol is checked from the files written (:mod:`nnunet_diffrefine.benchmark.protocol`).

Every stage is skipped when its outputs exist, so an interrupted run resumes (trainings resume at
their last checkpoint); ``state.json`` in the work folder keeps each stage's wall time. Writes
``refinement.json`` (``rows``, ``comparisons``, ``seed``, ``phenotype``, ``commit``, every setting,
stage times) and ``refinement.md`` to ``-o``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _setup import workspace
from bench_refinement_report import rerender, write_report
from bench_refinement_rows import BASES, DATASET_ID, REFINED, REPO

from nnunet_diffrefine.benchmark.models import fold_trained, train_fold
from nnunet_diffrefine.workspace import StageRunner, git_commit


def parse_args() -> argparse.Namespace:
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
    args = p.parse_args()
    if args.o is None:
        name = "refinement" if args.profile == "classic" else f"refinement_{args.profile}"
        args.o = str(REPO / "benchmarks" / "results" / name)
    return args


class Benchmark:
    """The paths and settings of one run, and one method per stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

        default = Path.home() / ".cache" / "nnunet-diffrefine" / "bench_refinement"
        self.args = args
        suffix = "" if args.profile == "classic" else f"_{args.profile}"
        self.work = Path(args.work) if args.work else default / f"seed{args.seed}_{args.phenotype}{suffix}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.nnunet = workspace(self.work, nnUNet_def_n_proc="1")
        self.name = f"Dataset{DATASET_ID}_RefineS{args.seed}{args.phenotype.capitalize()}"
        self.raw = self.work / "nnUNet_raw" / self.name
        self.pre = self.work / "nnUNet_preprocessed" / self.name
        self.results = self.work / "nnUNet_results" / self.name
        self.schedule = CPUSchedule(epochs=args.epochs, iterations=args.iters)
        self.folds = list(range(args.folds))
        self.stage = StageRunner(self.work / "state.json", REPO)

    # --- data ------------------------------------------------------------------------------------------
    def synthesize(self) -> None:
        from nnunet_diffrefine.data.synth import SynthConfig, brain_crop_grid, synthesize_dataset

        a = self.args
        if a.profile == "realistic":
            shape, spacing = brain_crop_grid(2.5)
            grid = dict(shape=shape, spacing=spacing)
        else:
            grid = dict(shape=(a.shape,) * 3)
        config = SynthConfig(**grid, seed=a.seed, phenotype=a.phenotype, profile=a.profile)
        synthesize_dataset(
            self.work / "nnUNet_raw", DATASET_ID, self.name.split("_", 1)[1], a.num_train, a.num_test, config
        )

    def plan(self) -> None:
        self.nnunet.plan_and_preprocess(DATASET_ID)

    def splits_and_presets(self) -> None:
        from nnunet_diffrefine.benchmark.protocol import kfold_splits, write_splits
        from nnunet_diffrefine.training.plans_presets import write_plans_preset

        write_splits(self.pre, kfold_splits(self.training_cases(), self.args.folds))
        for _, arch in BASES.values():
            write_plans_preset(DATASET_ID, arch, cpu=True, overwrite=True, preprocessed_root=self.pre.parent)

    def training_cases(self) -> list[str]:
        return sorted(p.name[: -len(".nii.gz")] for p in (self.raw / "labelsTr").glob("*.nii.gz"))

    def test_cases(self) -> set[str]:
        return {p.name[: -len(".nii.gz")] for p in (self.raw / "labelsTs").glob("*.nii.gz")}

    # --- base models -------------------------------------------------------------------------------------
    def plans_name(self, row: str) -> str:
        from nnunet_diffrefine.training.plans_presets import preset_plans_name

        return preset_plans_name(BASES[row][1], True)

    def model(self, row: str) -> Path:
        return self.results / f"{BASES[row][0]}__{self.plans_name(row)}__3d_fullres"

    def train(self, row: str, fold: int) -> None:
        train_fold(self.nnunet, self.schedule, DATASET_ID, BASES[row][0], self.plans_name(row), fold)

    def trained(self, row: str, fold: int) -> bool:
        return fold_trained(self.model(row) / f"fold_{fold}")

    def predictions(self, row: str, fold: int | str) -> Path:
        return self.work / "predictions" / row.replace(" ", "_") / f"fold_{fold}"

    def predict(self, row: str, fold: int) -> None:
        from nnunet_diffrefine.benchmark.predict import case_files, predict_cases

        cases = case_files(self.raw / "imagesTs", ".nii.gz", 4)
        predict_cases(
            self.model(row),
            fold,
            cases,
            self.predictions(row, fold),
            use_mirroring=True,
            save_probabilities=True,
        )

    def ensemble(self, row: str, folders: list[Path]) -> None:
        from nnunet_diffrefine.benchmark.scores import ensemble_folders

        model = self.model(REFINED[row][0] if row in REFINED else row)
        dataset_json = json.loads((model / "dataset.json").read_text())
        ensemble_folders(
            folders,
            self.predictions(row, "ensemble"),
            dataset_json,
            json.loads((model / "plans.json").read_text()),
        )

    # --- refiners ----------------------------------------------------------------------------------------
    def train_refiner(self, prior: str, refiner: str) -> None:
        from nnunet_diffrefine.refine.registry import refiner_settings
        from nnunet_diffrefine.refine.train import train_refiner_for_model

        a = self.args
        settings = refiner_settings(
            refiner, "cpu", max_epochs=a.refiner_epochs, iterations_per_epoch=a.refiner_iters
        )
        trainer = BASES[prior][0]
        train_refiner_for_model(
            self.nnunet.folders,
            DATASET_ID,
            trainer,
            self.plans_name(prior),
            "3d_fullres",
            [0],
            refiner,
            settings,
            self.folds,
        )

    def refiner_folder(self, prior: str, refiner: str) -> Path:
        return self.model(prior) / "fold_0" / f"refiner_{refiner}"

    def refine(self, row: str, fold: int, samples: int | None = None) -> Path:
        from nnunet_diffrefine.refine.postprocess import PostprocessConfig
        from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

        prior, refiner, overrides = REFINED[row]
        out = self.predictions(row, fold) if samples is None else self.predictions(row, f"{fold}_uncertainty")
        overrides = dict(overrides, **({"num_samples": samples} if samples else {}))
        refine_folder(
            self.predictions(prior, fold),
            out,
            self.model(prior),
            [0],
            self.raw / "imagesTs",
            RefineOptions(refiner=refiner, postprocess=PostprocessConfig(enabled=False), overrides=overrides),
        )
        return out


def _complete(folder: Path, expected: int, pattern: str = "*.nii.gz") -> bool:
    return (folder / "timings.json").is_file() and len(list(folder.glob(pattern))) == expected


def run_base_stages(b: Benchmark, row: str) -> None:
    """Train every fold of one base model, predict the test split with each fold, ensemble the folds."""
    s, n = b.stage, len(b.test_cases())
    for f in b.folds:
        s(f"train {row} fold {f}", lambda f=f: b.trained(row, f), lambda f=f: b.train(row, f))
    for f in b.folds:
        folder = b.predictions(row, f)
        s(f"predict {row} fold {f}", lambda d=folder: _complete(d, n, "*.npz"), lambda f=f: b.predict(row, f))
    folders = [b.predictions(row, f) for f in b.folds]
    s(
        f"ensemble {row}",
        b.predictions(row, "ensemble").joinpath("dataset.json").is_file,
        lambda: b.ensemble(row, folders),
    )


def run_refiner_stages(b: Benchmark, prior_row: str) -> None:
    """Train each refiner of one prior on its out-of-fold cases, refine each fold's test prior, ensemble."""
    s, n = b.stage, len(b.test_cases())
    for row, (prior, refiner, overrides) in REFINED.items():
        if prior != prior_row:
            continue
        weights = b.refiner_folder(prior, refiner) / "refiner_final.pth"
        s(
            f"train refiner {refiner} on {prior}",
            weights.is_file,
            lambda p=prior, r=refiner: b.train_refiner(p, r),
        )
        for f in b.folds:
            folder = b.predictions(row, f)
            s(f"refine {row} fold {f}", lambda d=folder: _complete(d, n), lambda r=row, f=f: b.refine(r, f))
        folders = [b.predictions(row, f) for f in b.folds]
        ensembled = b.predictions(row, "ensemble") / "dataset.json"
        s(f"ensemble {row}", ensembled.is_file, lambda r=row, fs=folders: b.ensemble(r, fs))
        if (
            not overrides and refiner != "control" and b.args.uncertainty_samples > 1
        ):  # control: deterministic
            folder = b.predictions(row, "0_uncertainty")
            s(
                f"uncertainty {row}",
                lambda d=folder: _complete(d, n),
                lambda r=row: b.refine(r, 0, b.args.uncertainty_samples),
            )


def run_stages(b: Benchmark, report) -> None:
    """Every stage of the protocol (see the module docstring), one base model and its refiners at a
    time in the order of ``--bases``; ``report()`` rewrites the results after each, so that a run
    stopped part way leaves the rows it finished."""
    b.stage("synthesize", lambda: (b.raw / "dataset.json").is_file(), b.synthesize)
    b.stage("plan_and_preprocess", lambda: (b.pre / "nnUNetPlans.json").is_file(), b.plan)
    b.stage("splits_and_presets", lambda: False, b.splits_and_presets)
    for row in b.args.bases:
        run_base_stages(b, row)
        run_refiner_stages(b, row)
        report()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    arguments = parse_args()
    if arguments.rerender:
        rerender(Path(arguments.o).with_suffix(".json"))
        sys.exit(0)
    benchmark = Benchmark(arguments)

    # the commit at the start; with an editable install, later edits reach the stages that start after
    # them, so a long run should run from a snapshot of the code (a git worktree on PYTHONPATH)
    started_at = git_commit(REPO)
    if benchmark.args.report_only:
        write_report(benchmark, started_at)
    else:
        run_stages(benchmark, lambda: write_report(benchmark, started_at))
