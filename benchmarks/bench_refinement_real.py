"""The refinement benchmark on real MRI: the BraTS 2018 cases in ``shared/real/brats2018``.

Usage: python benchmarks/bench_refinement_real.py [--data real|realistic-phantoms] [--real-root DIR]
       [--num-phantoms 15] [--seed 0] [--work DIR] [--folds 3]
       [--spacing 2.0] [--epochs 80] [--iters 25] [--bases ROW ...] [--refined ROW ...]
       [--refiner-epochs 20] [--refiner-iters 25] [--refiner-patch Z Y X] [--refiner-set R:KEY=VALUE ...]
       [--gate-folds 2] [--report-only] [-o benchmarks/results/refinement_real]

The protocol (every rule of "Measuring refinement honestly"), with cross-validated stacking because
there are only 15 labelled cases and no test split to spare:

1. The cases are converted with ``nnunet-diffrefine convert`` (BraTS 2021 naming; labels 1/2/4 -> 1/2/3)
   and planned by nnU-Net at an isotropic ``--spacing`` (mm; nnU-Net resamples) with
   ``nnUNetv2_plan_experiment -overwrite_target_spacing``, then the small-CPU plans presets (patch sides
   <= 64 voxels, batch 2).
2. K-fold cross-validation over all cases (``--folds``, nnU-Net's ``splits_final.json``, the same folds
   for every model). Every base model trains each fold with ``--npz``: nnU-Net's final validation of
   fold k (with mirroring) gives the out-of-fold prior of every case of fold k, from a model that never
   trained on it. A base row is the union of those out-of-fold priors (no fold ensemble: each case has
   exactly one model that did not see it).
3. Stacking: the refiner applied to the cases of fold k is trained only on the out-of-fold priors of the
   cases of the other folds (saved in ``fold_k/refiner_<name>``; its own early stopping splits those),
   so it never sees the image, the label or the prior of a case it refines.
4. No row is post-processed (nnU-Net's thresholding only).
5. Per case, mean Dice and HD95 (mm) over TC/WT/ET (BraTS convention for empty masks); for every refined
   row the paired difference to its prior over all cases (bootstrap 95 % CI, Wilcoxon signed-rank p).

Data: BraTS challenge data (Menze et al., IEEE TMI 2015; Bakas et al., Scientific Data 2017; Bakas et al.,
arXiv:1811.02629). Nothing derived from them is written into the repository except the scores in
``-o``. Every stage is skipped when its outputs exist (trainings resume from their checkpoints);
``state.json`` in the work folder keeps the wall time and the commit of each stage.

``--data realistic-phantoms`` runs the same protocol on adult phantoms of the ``realistic`` synthesis
profile (2 mm, 140 x 170 x 150 mm around the brain), written instead of converted: whether a base
model scores on them as on the real cases under the same CPU budget (results
``benchmarks/results/refinement_realistic_phantoms``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from _setup import fold_trained, train_fold, workspace, write_results

from nnunet_diffrefine.workspace import StageRunner, git_commit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_ROOT = REPO.parent / "shared" / "real" / "brats2018"
DATA = {  # --data -> (dataset id, name, default work folder, default results file)
    "real": (964, "BraTS18Real", "bench_refinement_real", "refinement_real"),
    "realistic-phantoms": (
        965,
        "RealisticPhantoms",
        "bench_refinement_realistic",
        "refinement_realistic_phantoms",
    ),
}
PHANTOM_SPACING_MM = 2.0  # the realistic phantoms: the box around the brain at 2 mm (70 x 85 x 75)
REGIONS = ("TC", "WT", "ET")
BASES = {  # row -> (trainer, plans preset architecture), in the issue's order of priority
    "nnU-Net (stock)": ("nnUNetTrainerCustomSchedule", "nnunet"),
    "MedNeXt": ("MedNeXtTrainer", "mednext"),
    "Swin-UNETR": ("SwinUNETRTrainer", "swinunetr"),
    "Res U-Net": ("ResUNetTrainer", "resunet"),
    "SegResNet": ("SegResNetTrainer", "segresnet"),
}


@dataclass(frozen=True)
class Refined:
    """A refined row: ``refiner`` on ``prior``'s out-of-fold priors, trained with ``changes`` to the cpu
    preset (saved as ``refiner_<refiner>__<tag>`` when given) and applied with inference ``overrides``;
    ``force``: applied everywhere, whatever its validation gate says."""

    prior: str
    refiner: str
    overrides: dict = field(default_factory=dict)
    force: bool = False
    changes: dict = field(default_factory=dict)
    tag: str | None = None

    @property
    def folder_name(self) -> str:
        return self.refiner + (f"__{self.tag}" if self.tag else "")


REFINED = {
    "CorrDiff on nnU-Net": Refined("nnU-Net (stock)", "corrdiff"),
    "DDPM (cond) on nnU-Net": Refined("nnU-Net (stock)", "ddpm"),
    "MedSegDiff (cond) on nnU-Net": Refined("nnU-Net (stock)", "medsegdiff"),
    "DDPM (scratch) on nnU-Net": Refined("nnU-Net (stock)", "ddpm_scratch"),
    "Control (deterministic) on nnU-Net": Refined("nnU-Net (stock)", "control"),
    # the augmentation ablation: trained on the real out-of-fold priors only (no perturbed priors)
    "CorrDiff on nnU-Net, real priors only": Refined(
        "nnU-Net (stock)", "corrdiff", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
    "Control on nnU-Net, real priors only": Refined(
        "nnU-Net (stock)", "control", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
    "CoMNeT (MedNeXt + CorrDiff)": Refined("MedNeXt", "corrdiff"),
    "DDPM (cond) on Swin-UNETR": Refined("Swin-UNETR", "ddpm"),
    "MedSegDiff (cond) on Swin-UNETR": Refined("Swin-UNETR", "medsegdiff"),
}
UNGATED = " (gate off)"
REFINED.update(  # the same refiners applied everywhere (--force-refiner): what the gate protects from, if anything
    {row + UNGATED: dataclasses.replace(spec, force=True) for row, spec in list(REFINED.items())}
)
PAIRS = [("DDPM (scratch) on nnU-Net", "DDPM (cond) on nnU-Net")]  # is conditioning needed
PAIRS += [  # is diffusion needed: each diffusion refiner against the deterministic control, same prior
    ("Control (deterministic) on nnU-Net", r)
    for r in ("CorrDiff on nnU-Net", "DDPM (cond) on nnU-Net", "MedSegDiff (cond) on nnU-Net")
]
PAIRS += [  # is the augmentation needed: mixed priors (the default) against real priors only
    ("CorrDiff on nnU-Net, real priors only", "CorrDiff on nnU-Net"),
    ("Control on nnU-Net, real priors only", "Control (deterministic) on nnU-Net"),
]
PAIRS += [(a + UNGATED, b + UNGATED) for a, b in PAIRS]  # the same questions without the gate


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
    p.add_argument("--bases", nargs="+", choices=list(BASES), default=list(BASES)[:3])
    p.add_argument(
        "--refined",
        nargs="*",
        choices=list(REFINED),
        default=[r for r in REFINED if not r.endswith(UNGATED)],
        help=f"refined rows (each also as '<row>{UNGATED}': applied everywhere, whatever its gate says)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    p.add_argument(
        "--report-only", action="store_true", help="only rewrite the results from what the work folder holds"
    )
    p.add_argument("-o", default=None, help="results file without suffix (default: by --data)")
    args = p.parse_args(argv)
    if args.o is None:
        args.o = str(REPO / "benchmarks" / "results" / DATA[args.data][3])
    return args


class RealBenchmark:
    """Paths and settings of one run, and one method per stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

        self.args = args
        self.real_root = Path(args.real_root)
        self.dataset_id, dataset_name, work, _ = DATA[args.data]
        default = Path.home() / ".cache" / "nnunet-diffrefine" / work
        self.work = Path(args.work) if args.work else default
        self.work.mkdir(parents=True, exist_ok=True)
        self.nnunet = workspace(self.work, nnUNet_def_n_proc="1")
        self.name = f"Dataset{self.dataset_id}_{dataset_name}"
        self.raw = self.work / "nnUNet_raw" / self.name
        self.pre = self.work / "nnUNet_preprocessed" / self.name
        self.results = self.work / "nnUNet_results" / self.name
        self.source_plans = f"nnUNetPlans{str(args.spacing).replace('.', 'p')}mm"
        self.schedule = CPUSchedule(epochs=args.epochs, iterations=args.iters)
        self.folds = list(range(args.folds))
        self.stage = StageRunner(self.work / "state.json", REPO)

    # --- data ------------------------------------------------------------------------------------------
    def check_real_data(self) -> None:
        if self.args.data != "real":
            return
        cases = sorted(p for p in self.real_root.glob("*") if p.is_dir()) if self.real_root.is_dir() else []
        if not cases:
            raise SystemExit(
                f"the real BraTS cases are missing: {self.real_root} holds no case folders "
                "(pass --real-root to the folder with one sub-folder per case)"
            )

    def convert(self) -> None:
        """The raw dataset: the real cases converted, or the realistic phantoms written."""
        if self.args.data == "realistic-phantoms":
            from nnunet_diffrefine.data.synth import SynthConfig, brain_crop_grid, synthesize_dataset

            shape, spacing = brain_crop_grid(PHANTOM_SPACING_MM)
            config = SynthConfig(shape=shape, spacing=spacing, seed=self.args.seed, profile="realistic")
            synthesize_dataset(
                self.work / "nnUNet_raw",
                self.dataset_id,
                self.name.split("_", 1)[1],
                self.args.num_phantoms,
                0,
                config,
                num_processes=2,
            )
            return
        from nnunet_diffrefine.data.convert import convert_brats

        convert_brats(
            self.real_root,
            self.work / "nnUNet_raw",
            self.dataset_id,
            self.name.split("_", 1)[1],
            challenge="brats2021",
            hardlink=False,
            num_processes=2,
        )

    def plan(self) -> None:
        """nnU-Net's fingerprint, an experiment planned at ``--spacing`` (its own plans name), preprocessing."""
        spacing = [str(self.args.spacing)] * 3
        self.nnunet.extract_fingerprint(self.dataset_id)
        options = ["-overwrite_target_spacing", *spacing, "-overwrite_plans_name", self.source_plans]
        self.nnunet.plan_experiment(self.dataset_id, options)
        self.nnunet.preprocess(self.dataset_id, self.source_plans)

    def splits_and_presets(self) -> None:
        from nnunet_diffrefine.benchmark.protocol import kfold_splits, write_splits
        from nnunet_diffrefine.training.plans_presets import write_plans_preset

        write_splits(self.pre, kfold_splits(self.cases(), self.args.folds))
        for _, arch in BASES.values():
            write_plans_preset(
                self.dataset_id,
                arch,
                cpu=True,
                source_plans=self.source_plans,
                overwrite=True,
                preprocessed_root=self.work / "nnUNet_preprocessed",
            )

    def cases(self) -> list[str]:
        return sorted(p.name[: -len(".nii.gz")] for p in (self.raw / "labelsTr").glob("*.nii.gz"))

    def splits(self) -> list[dict]:
        from nnunet_diffrefine.benchmark.protocol import kfold_splits

        return kfold_splits(self.cases(), self.args.folds)

    # --- base models -------------------------------------------------------------------------------------
    def plans_name(self, row: str) -> str:
        from nnunet_diffrefine.training.plans_presets import preset_plans_name

        return preset_plans_name(BASES[row][1], True, self.source_plans)

    def model(self, row: str) -> Path:
        return self.results / f"{BASES[row][0]}__{self.plans_name(row)}__3d_fullres"

    def train(self, row: str, fold: int) -> None:
        train_fold(self.nnunet, self.schedule, self.dataset_id, BASES[row][0], self.plans_name(row), fold)

    def trained(self, row: str, fold: int) -> bool:
        return fold_trained(self.model(row) / f"fold_{fold}")

    def prior_folder(self, row: str, fold: int) -> Path:
        """Where row ``row``'s segmentations of fold ``fold``'s cases are (its out-of-fold cases)."""
        if row in BASES:
            return self.model(row) / f"fold_{fold}" / "validation"
        return self.work / "predictions" / row.replace(" ", "_") / f"fold_{fold}"

    # --- refiners ----------------------------------------------------------------------------------------
    def refiner_folder(self, row: str, fold: int) -> Path:
        spec = REFINED[row]
        return self.model(spec.prior) / f"fold_{fold}" / f"refiner_{spec.folder_name}"

    def train_refiner(self, row: str, fold: int) -> None:
        """Fold ``fold``'s refiner, trained on the out-of-fold priors of the other folds' cases only."""
        from nnunet_diffrefine.refine.registry import refiner_settings
        from nnunet_diffrefine.refine.train import train_refiner_for_model

        spec = REFINED[row]
        a = self.args
        settings = refiner_settings(
            spec.refiner,
            "cpu",
            max_epochs=a.refiner_epochs,
            iterations_per_epoch=a.refiner_iters,
            gate_folds=a.gate_folds,
            patch_size=tuple(a.refiner_patch) if a.refiner_patch else None,
            **self.refiner_changes(spec.refiner),
            **spec.changes,
        )
        others = [f for f in self.folds if f != fold]
        train_refiner_for_model(
            self.nnunet.folders,
            self.dataset_id,
            BASES[spec.prior][0],
            self.plans_name(spec.prior),
            "3d_fullres",
            [fold],
            spec.refiner,
            settings,
            out_of_fold_from=others,
            overwrite=True,
            tag=spec.tag,
        )

    def refiner_changes(self, refiner: str) -> dict[str, str]:
        """``--refiner-set`` for ``refiner`` (typed and checked by its settings class)."""
        changes = {}
        for item in self.args.refiner_set:
            name, _, assignment = item.partition(":")
            key, equals, value = assignment.partition("=")
            if not (name and key and equals):
                raise SystemExit(f"--refiner-set {item!r}: write REFINER:KEY=VALUE")
            if name == refiner:
                changes[key] = value
        return changes

    def stacking_refiner_trained(self, row: str, fold: int) -> bool:
        """Fold ``fold``'s refiner exists and was trained on exactly the other folds' cases."""
        folder = self.refiner_folder(row, fold)
        if not (folder / "refiner_final.pth").is_file():
            return False
        config = json.loads((folder / "refiner.json").read_text())
        seen = set(config.get("training_cases", [])) | set(config.get("validation_cases", []))
        return seen == {c for k, s in enumerate(self.splits()) if k != fold for c in s["val"]}

    def refined_complete(self, row: str, fold: int) -> bool:
        folder = self.prior_folder(row, fold)
        expected = len(self.splits()[fold]["val"])
        return (folder / "timings.json").is_file() and len(list(folder.glob("*.nii.gz"))) == expected

    def refine(self, row: str, fold: int) -> None:
        from nnunet_diffrefine.refine.postprocess import PostprocessConfig
        from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

        spec = REFINED[row]
        refine_folder(
            self.prior_folder(spec.prior, fold),
            self.prior_folder(row, fold),
            self.model(spec.prior),
            [fold],
            self.raw / "imagesTr",
            RefineOptions(
                refiner=spec.folder_name,
                postprocess=PostprocessConfig(enabled=False),
                overrides=spec.overrides,
                overwrite=True,
                force_refiner=spec.force,
            ),
        )


def run_stages(b: RealBenchmark, report) -> None:
    """Every stage (see the module docstring), one base model and then its refiners at a time;
    ``report()`` rewrites the results after each base model and each refined row."""
    b.check_real_data()
    b.stage("convert", lambda: (b.raw / "dataset.json").is_file(), b.convert)
    b.stage("plan_and_preprocess", lambda: (b.pre / f"{b.source_plans}.json").is_file(), b.plan)
    b.stage("splits_and_presets", lambda: False, b.splits_and_presets)
    for row in b.args.bases:
        for f in b.folds:
            b.stage(
                f"train {row} fold {f}", lambda r=row, f=f: b.trained(r, f), lambda r=row, f=f: b.train(r, f)
            )
        report()
        for refined in [r for r in b.args.refined if REFINED[r].prior == row]:
            for f in b.folds:
                b.stage(
                    f"train refiner {refined} fold {f}",
                    lambda r=refined, f=f: b.stacking_refiner_trained(r, f),
                    lambda r=refined, f=f: b.train_refiner(r, f),
                )
                b.stage(
                    f"refine {refined} fold {f}",
                    lambda r=refined, f=f: b.refined_complete(r, f),
                    lambda r=refined, f=f: b.refine(r, f),
                )
            report()


# --- results ---------------------------------------------------------------------------------------------
def evaluate_row(b: RealBenchmark, row: str) -> dict[str, dict[str, float]] | None:
    """Per-case scores of ``row`` over every case (each fold's cases from its own folder), or None
    while a fold is missing. Scores are cached in the work folder until the predictions change."""
    from nnunet_diffrefine.benchmark.scores import per_case_scores
    from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder

    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    _, names, _ = dataset_regions(dataset_json)
    scores: dict[str, dict[str, float]] = {}
    for f, split in enumerate(b.splits()):
        folder = b.prior_folder(row, f)
        if not (b.trained(row, f) if row in BASES else b.refined_complete(row, f)):
            return None
        cache = b.work / "scores" / row.replace(" ", "_") / f"fold_{f}.json"
        newest = max(p.stat().st_mtime for p in folder.glob("*.nii.gz"))
        if cache.is_file() and cache.stat().st_mtime > newest:
            summary = json.loads(cache.read_text())
        else:
            cache.parent.mkdir(parents=True, exist_ok=True)
            summary = evaluate_folder(
                b.raw / "labelsTr",
                folder,
                dataset_json,
                cache,
                num_processes=2,
                progress=False,
                cases=split["val"],
            )
        scores.update(per_case_scores(summary, names))
    return scores


def refiner_details(b: RealBenchmark, row: str) -> dict:
    """Per fold: the refiner's early-stopping validation Dice (prior -> refined), its cases, settings and
    MedSegDiff's fusion weight."""
    import torch

    out = {}
    for f in b.folds:
        folder = b.refiner_folder(row, f)
        if not (folder / "refiner.json").is_file():
            continue
        config = json.loads((folder / "refiner.json").read_text())
        extra = torch.load(folder / "refiner_final.pth", map_location="cpu", weights_only=True)["extra_state"]
        out[str(f)] = {
            "prior_validation_dice": config.get("prior_validation_dice"),
            "validation_dice": config.get("best_validation_dice"),
            "best_epoch": config.get("best_epoch"),
            "fusion_weight": extra.get("fusion_weight"),
            "gate": (config.get("gate") or {}).get("blends"),
            "training_cases": config["training_cases"],
            "validation_cases": config["validation_cases"],
            "settings": config["settings"],
        }
    return out


def protocol_problems(b: RealBenchmark, details: dict[str, dict]) -> list[str]:
    """Every break of the stacking protocol in the refiners' saved cases (empty when kept)."""
    from nnunet_diffrefine.benchmark.protocol import stacking_problems

    problems = []
    for row, folds in details.items():
        for f, d in folds.items():
            seen = d["training_cases"] + d["validation_cases"]
            problems += stacking_problems(seen, b.splits(), int(f), f"{row} fold {f}")
    return problems


def _ci(value: float, ci: list[float], digits: int) -> str:
    return f"{value:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _row_line(r: dict) -> str:
    cells = [r["name"], r["prior"] or "–"]
    cells += [f"{r[f'dice_{g}']:.3f}" for g in REGIONS] + [f"{r['mean_dice']:.3f}", f"{r['mean_hd95']:.2f}"]
    if r["prior"] is None:
        cells += ["–"] * 4
    else:
        cells += [
            _ci(r["delta_dice"], r["delta_dice_ci95"], 3),
            f"{r['wilcoxon_p']:.3f}",
            _ci(r["delta_hd95"], r["delta_hd95_ci95"], 2),
            f"{r['wilcoxon_p_hd95']:.3f}",
        ]
    return "| " + " | ".join(cells) + " |"


def markdown(record: dict) -> str:
    from nnunet_diffrefine.benchmark.rows import curve_table

    lines = [
        "# Refinement benchmark on real MRI (BraTS 2018, cross-validated stacking)"
        if record["data"] == "brats2018-real"
        else "# Refinement benchmark on realistic phantoms (the real-data protocol, cross-validated stacking)",
        "",
        record["summary"],
        "",
    ]
    lines += [
        "| Model | prior | Dice TC | Dice WT | Dice ET | Dice Avg | HD95 Avg (mm) ↓ | Δ Dice vs prior [95 % CI] "
        "| Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
        "|" + "---|" * 11,
        *[_row_line(r) for r in record["rows"]],
    ]
    if record["comparisons"]:
        lines += [
            "",
            "| a | b | Δ Dice (b - a) [95 % CI] | Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
            "|---|---|---|---|---|---|",
        ]
        for c in record["comparisons"]:
            lines.append(
                f"| {c['a']} | {c['b']} | {_ci(c['delta_dice'], c['delta_dice_ci95'], 3)} | {c['wilcoxon_p']:.3f} "
                f"| {_ci(c['delta_hd95'], c['delta_hd95_ci95'], 2)} | {c['wilcoxon_p_hd95']:.3f} |"
            )
    if record["refiners"]:
        lines += ["", "## Refiners (per fold: early-stopping validation Dice, prior -> refined)", ""]
        for row, folds in record["refiners"].items():
            shown = ", ".join(
                f"fold {f}: {d['prior_validation_dice']:.3f} -> {d['validation_dice']:.3f}"
                + (f" (w = {d['fusion_weight']:.2f})" if d["fusion_weight"] is not None else "")
                + (f", gate {d['gate']}" if d.get("gate") else "")
                for f, d in folds.items()
            )
            lines.append(f"- {row}: {shown}")
    if record["learning_curves"]:
        lines += ["", "## Learning curves (nnU-Net's validation pseudo-Dice; per epoch in the JSON)", ""]
        lines += curve_table(record["learning_curves"])
    problems = record["protocol_problems"]
    refined = [r for r in record["rows"] if r["prior"] is not None]
    if refined:
        lines += ["", "## Targets", ""]
        for r in refined:
            harm = r["delta_dice"] >= -0.005
            gain = r["delta_dice_ci95"][0] > 0 or r["delta_hd95_ci95"][1] < 0
            lines.append(
                f"- {r['name']}: no harm (Δ Dice >= -0.005) {'met' if harm else 'MISSED'}; paired gain "
                f"(Dice CI above 0 or HD95 CI below 0) {'shown' if gain else 'not shown'}"
            )
    lines += [
        "",
        f"Protocol check: {'kept' if not problems else '; '.join(problems)}.",
        "",
        "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in record["stage_seconds"].items()),
        "",
        (
            f"Data: BraTS 2018 training cases ({CITATION})."
            if record["data"] == "brats2018-real"
            else "Data: phantoms of nnunet-diffrefine's realistic synthesis profile."
        ),
        "",
    ]
    return "\n".join(lines)


CITATION = (
    'Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 2015; '
    'Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels '
    'and radiomic features", Scientific Data 2017; Bakas et al., arXiv:1811.02629, 2018'
)


def _patch_sizes(b: RealBenchmark) -> dict[str, list[int]]:
    out = {}
    for row in b.args.bases:
        plans = b.pre / f"{b.plans_name(row)}.json"
        if plans.is_file():
            out[row] = json.loads(plans.read_text())["configurations"]["3d_fullres"]["patch_size"]
    return out


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


def write_report(b: RealBenchmark) -> None:
    """Score every finished row and write ``-o``.json / .md (the phantom benchmark's fields, plus ``data``)."""
    from nnunet_diffrefine.benchmark.rows import learning_curves, paired_comparison, row_record

    a = b.args
    if not (b.pre / "splits_final.json").is_file():
        print("nothing to report yet")
        return
    candidates = [r for r in BASES if r in a.bases] + [r for r in REFINED if r in a.refined]
    scores = {row: s for row in candidates if (s := evaluate_row(b, row)) is not None}
    prior_of = {row: REFINED[row].prior if row in REFINED else None for row in scores}
    rows = [
        row_record(row, s, REGIONS, prior_of[row], scores.get(prior_of[row]), a.seed)
        for row, s in scores.items()
        if prior_of[row] is None or prior_of[row] in scores
    ]
    details = {  # an ungated row shares its refiners with the gated one
        row: d
        for row in scores
        if row in REFINED and not row.endswith(UNGATED) and (d := refiner_details(b, row))
    }
    problems = protocol_problems(b, details)
    pairs = [
        {"a": x, "b": y, **paired_comparison(scores[x], scores[y], a.seed)}
        for x, y in PAIRS
        if x in scores and y in scores
    ]
    patches = _patch_sizes(b)
    record = {
        "data": "brats2018-real" if a.data == "real" else f"realistic-phantoms-seed{a.seed}",
        "seed": a.seed,
        "commit": git_commit(REPO),
        "stage_commits": b.stage.commits,
        "dataset": b.name,
        "dataset_id": b.dataset_id,
        "settings": {
            **{k: v for k, v in vars(a).items() if k not in ("work", "real_root", "o", "report_only")},
            "target_spacing_mm": [a.spacing] * 3,
            "patch_size": patches,
            "cpu_schedule": b.schedule.to_json(),
            "num_cases": len(b.cases()),
            "folds": b.splits(),
        },
        "summary": (
            f"{len(b.cases())} {'real BraTS 2018 cases' if a.data == 'real' else 'realistic adult phantoms (2 mm)'}, {a.folds}-fold cross-validation (every model on the same "
            f"folds); nnU-Net planned at {a.spacing} mm isotropic, small-CPU plans (patch "
            f"{', '.join(f'{r} {p}' for r, p in patches.items())}; batch 2); base models {b.schedule.epochs} x "
            f"{b.schedule.iterations} iterations per fold (AdamW {b.schedule.adamw_lr}, stock SGD "
            f"{b.schedule.stock_sgd_lr}). A base row is each case's out-of-fold prior (nnU-Net's final validation "
            "of the fold that did not train on it, with mirroring); a refined row refines each case with the "
            "refiner trained on the other folds' out-of-fold priors only (stacking). No post-processing; scored "
            "on the original grid of each case (1 mm real, 2 mm phantoms); means over all cases of the mean over TC/WT/ET; paired bootstrap 95 % "
            f"CIs and Wilcoxon p over all cases. Refiners: `cpu` preset, {a.refiner_epochs} x {a.refiner_iters} "
            f"iterations, patch {a.refiner_patch or 'of the base model'}"
            + (f", {' '.join(a.refiner_set)}" if a.refiner_set else "")
            + ", gate decided by "
            + (f"{a.gate_folds}-fold inner cross-validation" if a.gate_folds else "the early-stopping cases")
            + f". `{command_line(a)}`."
        ),
        "rows": rows,
        "comparisons": pairs,
        "refiners": details,
        "per_case": scores,
        "learning_curves": learning_curves({r: b.model(r) for r in BASES if r in a.bases}, b.folds),
        "protocol_problems": problems,
        "stage_seconds": b.stage.seconds,
    }
    write_results(record, Path(a.o), markdown(record), problems)


if __name__ == "__main__":
    benchmark = RealBenchmark(parse_args())
    if benchmark.args.report_only:
        write_report(benchmark)
    else:
        run_stages(benchmark, lambda: write_report(benchmark))
