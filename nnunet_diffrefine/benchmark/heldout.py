"""The phantom refinement benchmark with a held-out test split: which rows it compares, its typed
settings, one method per stage, and its results record.

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

:func:`results_record` scores what the work folder holds;
:mod:`~nnunet_diffrefine.benchmark.heldout_markdown` renders it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.benchmark import rows as rows_lib
from nnunet_diffrefine.benchmark.models import fold_trained, train_fold
from nnunet_diffrefine.benchmark.protocol import protocol_problems
from nnunet_diffrefine.benchmark.refined import Refined
from nnunet_diffrefine.benchmark.scores import per_case_scores, uncertainty_auroc
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder
from nnunet_diffrefine.workspace import NnUNetCommands, StageRunner

DATASET_ID = 962
BASES = {  # row -> (trainer, plans preset architecture); run in this order (cheapest answer first)
    "nnU-Net (stock)": ("nnUNetTrainerCustomSchedule", "nnunet"),
    "MedNeXt": ("MedNeXtTrainer", "mednext"),
    "Res U-Net": ("ResUNetTrainer", "resunet"),
    "SegResNet": ("SegResNetTrainer", "segresnet"),
    "Swin-UNETR": ("SwinUNETRTrainer", "swinunetr"),
}
COMNET = "CoMNeT (MedNeXt + CorrDiff, fold ensemble)"
REFINED = {  # row -> what it refines, with which refiner, trained and applied with which changes
    "DDPM (scratch)": Refined("Swin-UNETR", "ddpm_scratch"),
    "DDPM (cond)": Refined("Swin-UNETR", "ddpm"),
    "MedSegDiff (scratch)": Refined("Swin-UNETR", "medsegdiff_scratch"),
    "MedSegDiff (cond)": Refined("Swin-UNETR", "medsegdiff"),
    "MedSegDiff (cond), highway only (w = 0)": Refined(
        "Swin-UNETR", "medsegdiff", overrides={"fusion_weight": 0.0}
    ),
    COMNET: Refined("MedNeXt", "corrdiff"),
    "Control (deterministic)": Refined("Swin-UNETR", "control"),
    # the augmentation ablation: trained on the real out-of-fold priors only (no perturbed priors)
    "Control (deterministic), real priors only": Refined(
        "Swin-UNETR", "control", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
    "MedSegDiff (cond), real priors only": Refined(
        "Swin-UNETR", "medsegdiff", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
}
TABLES = {
    "Ke et al., Table 3 layout": [
        "nnU-Net (stock)",
        "Res U-Net",
        "Swin-UNETR",
        *list(REFINED)[:5],
        "Control (deterministic)",
    ],
    "Evans et al. (CoMNeT), Table 2 layout": ["nnU-Net (stock)", "SegResNet", "MedNeXt", COMNET],
    "Augmentation ablation: real out-of-fold priors only against real + perturbed priors": [
        "Swin-UNETR",
        "Control (deterministic)",
        "Control (deterministic), real priors only",
        "MedSegDiff (cond)",
        "MedSegDiff (cond), real priors only",
    ],
}
PAIRS = [("DDPM (scratch)", "DDPM (cond)"), ("MedSegDiff (scratch)", "MedSegDiff (cond)")]
PAIRS += [("MedSegDiff (cond), highway only (w = 0)", "MedSegDiff (cond)")]
PAIRS += [("Control (deterministic)", r) for r in ("DDPM (cond)", "MedSegDiff (cond)")]  # is diffusion needed
PAIRS += [  # do the perturbed priors help
    (f"{r}, real priors only", r) for r in ("Control (deterministic)", "MedSegDiff (cond)")
]


@dataclass(frozen=True)
class HeldOutSettings:
    """One run: ``num_train`` training and ``num_test`` test phantoms of ``seed``, ``phenotype`` and
    synthesis ``profile`` (``realistic``: a 56 x 68 x 60 crop at 2.5 mm; ``classic``: ``shape``³),
    ``folds``-fold cross-validation; base models ``epochs`` x ``iters`` iterations; refiners (cpu
    preset) ``refiner_epochs`` x ``refiner_iters``; ``uncertainty_samples`` samples for the AUROC;
    ``intensity_samples``: foreground intensities nnU-Net's fingerprint draws (``None``: its 10^8; see
    :mod:`nnunet_diffrefine.workspace.fingerprint`); ``bases``: the base rows to run, in order."""

    work: Path
    seed: int = 0
    phenotype: str = "adult"
    profile: str = "realistic"
    num_train: int = 24
    num_test: int = 16
    shape: int = 48
    folds: int = 3
    epochs: int = 40
    iters: int = 25
    refiner_epochs: int = 20
    refiner_iters: int = 25
    uncertainty_samples: int = 4
    intensity_samples: int | None = None
    bases: tuple[str, ...] = tuple(BASES)

    def __post_init__(self) -> None:
        if self.phenotype not in ("adult", "pediatric", "mixed") or self.profile not in (
            "classic",
            "realistic",
        ):
            raise InputError(f"phenotype {self.phenotype!r} / profile {self.profile!r} unknown")
        if [r for r in self.bases if r not in BASES]:
            raise InputError(
                f"unknown base rows {[r for r in self.bases if r not in BASES]}; known: {list(BASES)}"
            )
        if self.folds < 2:
            raise InputError(f"cross-validation needs at least 2 folds, got {self.folds}")

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "work": str(self.work)}


class HeldOutBenchmark:
    """The paths and settings of one run, and one method per stage; nnU-Net runs through ``nnunet``."""

    def __init__(self, settings: HeldOutSettings, nnunet: NnUNetCommands, repo: Path | None = None) -> None:
        from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

        self.settings = settings
        self.nnunet = nnunet
        self.work = Path(settings.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.name = f"Dataset{DATASET_ID}_RefineS{settings.seed}{settings.phenotype.capitalize()}"
        self.raw = nnunet.folders.raw / self.name
        self.pre = nnunet.folders.preprocessed / self.name
        self.results = nnunet.folders.results / self.name
        self.schedule = CPUSchedule(epochs=settings.epochs, iterations=settings.iters)
        self.folds = list(range(settings.folds))
        self.stage = StageRunner(self.work / "state.json", repo)

    # --- data ------------------------------------------------------------------------------------------
    def synthesize(self) -> None:
        from nnunet_diffrefine.data.synth import SynthConfig, brain_crop_grid, synthesize_dataset

        a = self.settings
        if a.profile == "realistic":
            shape, spacing = brain_crop_grid(2.5)
            grid = dict(shape=shape, spacing=spacing)
        else:
            grid = dict(shape=(a.shape,) * 3)
        config = SynthConfig(**grid, seed=a.seed, phenotype=a.phenotype, profile=a.profile)
        synthesize_dataset(
            self.nnunet.folders.raw, DATASET_ID, self.name.split("_", 1)[1], a.num_train, a.num_test, config
        )

    def plan(self) -> None:
        nnunet = dataclasses.replace(self.nnunet, intensity_samples=self.settings.intensity_samples)
        nnunet.plan_and_preprocess(DATASET_ID)

    def splits_and_presets(self) -> None:
        from nnunet_diffrefine.benchmark.protocol import kfold_splits, write_splits
        from nnunet_diffrefine.training.plans_presets import write_plans_preset

        write_splits(self.pre, kfold_splits(self.training_cases(), self.settings.folds))
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

        model = self.model(REFINED[row].prior if row in REFINED else row)
        dataset_json = json.loads((model / "dataset.json").read_text())
        ensemble_folders(
            folders,
            self.predictions(row, "ensemble"),
            dataset_json,
            json.loads((model / "plans.json").read_text()),
        )

    # --- refiners ----------------------------------------------------------------------------------------
    def train_refiner(self, row: str) -> None:
        """Row ``row``'s refiner, trained on the out-of-fold priors of every training case."""
        from nnunet_diffrefine.refine.registry import refiner_settings
        from nnunet_diffrefine.refine.train import train_refiner_for_model

        a, spec = self.settings, REFINED[row]
        settings = refiner_settings(
            spec.refiner,
            "cpu",
            max_epochs=a.refiner_epochs,
            iterations_per_epoch=a.refiner_iters,
            **spec.changes,
        )
        prior, refiner = spec.prior, spec.refiner
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
            tag=spec.tag,
        )

    def refiner_folder(self, row: str) -> Path:
        """Where row ``row``'s refiner is saved (one refiner for all folds: it trains on every training case)."""
        spec = REFINED[row]
        return self.model(spec.prior) / "fold_0" / f"refiner_{spec.folder_name}"

    def refine(self, row: str, fold: int, samples: int | None = None) -> Path:
        from nnunet_diffrefine.refine.postprocess import PostprocessConfig
        from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

        spec = REFINED[row]
        out = self.predictions(row, fold) if samples is None else self.predictions(row, f"{fold}_uncertainty")
        overrides = dict(spec.overrides, **({"num_samples": samples} if samples else {}))
        refine_folder(
            self.predictions(spec.prior, fold),
            out,
            self.model(spec.prior),
            [0],
            self.raw / "imagesTs",
            RefineOptions(
                refiner=spec.folder_name, postprocess=PostprocessConfig(enabled=False), overrides=overrides
            ),
        )
        return out


def _complete(folder: Path, expected: int, pattern: str = "*.nii.gz") -> bool:
    return (folder / "timings.json").is_file() and len(list(folder.glob(pattern))) == expected


def run_base_stages(b: HeldOutBenchmark, row: str) -> None:
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


def run_refiner_stages(b: HeldOutBenchmark, prior_row: str) -> None:
    """Train each refiner of one prior on its out-of-fold cases, refine each fold's test prior, ensemble."""
    s, n = b.stage, len(b.test_cases())
    for row, spec in REFINED.items():
        if spec.prior != prior_row:
            continue
        weights = b.refiner_folder(row) / "refiner_final.pth"
        s(
            f"train refiner {spec.folder_name} on {spec.prior}",
            weights.is_file,
            lambda r=row: b.train_refiner(r),
        )
        for f in b.folds:
            folder = b.predictions(row, f)
            s(f"refine {row} fold {f}", lambda d=folder: _complete(d, n), lambda r=row, f=f: b.refine(r, f))
        folders = [b.predictions(row, f) for f in b.folds]
        ensembled = b.predictions(row, "ensemble") / "dataset.json"
        s(f"ensemble {row}", ensembled.is_file, lambda r=row, fs=folders: b.ensemble(r, fs))
        if (  # the control is deterministic; the ablations are about Dice
            not spec.overrides
            and not spec.tag
            and spec.refiner != "control"
            and b.settings.uncertainty_samples > 1
        ):
            folder = b.predictions(row, "0_uncertainty")
            s(
                f"uncertainty {row}",
                lambda d=folder: _complete(d, n),
                lambda r=row: b.refine(r, 0, b.settings.uncertainty_samples),
            )


def run_stages(b: HeldOutBenchmark, report: Callable[[], None]) -> None:
    """Every stage of the protocol (see the module docstring), one base model and its refiners at a
    time in the order of ``--bases``; ``report()`` rewrites the results after each, so that a run
    stopped part way leaves the rows it finished."""
    b.stage("synthesize", lambda: (b.raw / "dataset.json").is_file(), b.synthesize)
    b.stage("plan_and_preprocess", lambda: (b.pre / "nnUNetPlans.json").is_file(), b.plan)
    b.stage("splits_and_presets", lambda: False, b.splits_and_presets)
    for row in b.settings.bases:
        run_base_stages(b, row)
        run_refiner_stages(b, row)
        report()


# --- results ---------------------------------------------------------------------------------------------
REGIONS = ("TC", "WT", "ET")


def available_rows(b: HeldOutBenchmark) -> list[str]:
    """The rows whose fold ensemble is complete (a run stopped part way reports those)."""
    rows = [r for r in BASES if r in b.settings.bases] + list(REFINED)
    return [r for r in rows if (b.predictions(r, "ensemble") / "dataset.json").is_file()]


def evaluate_rows(b: HeldOutBenchmark) -> dict[str, dict[str, dict[str, float]]]:
    """Per-case scores of every row's fold ensemble on the test split."""
    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    _, names, _ = dataset_regions(dataset_json)
    names = {str(k): v for k, v in names.items()}
    scores = {}
    for row in available_rows(b):
        folder = b.predictions(row, "ensemble")
        summary = evaluate_folder(
            b.raw / "labelsTs", folder, dataset_json, folder / "summary.json", num_processes=1, progress=False
        )
        scores[row] = per_case_scores(summary, names)
    return scores


def row_record(row: str, scores: dict, seed: int) -> dict:
    """One entry of ``rows``: the means and, for a refined row, the paired differences to its prior."""
    prior = REFINED[row].prior if row in REFINED else None
    return rows_lib.row_record(row, scores[row], REGIONS, prior, scores.get(prior), seed)


def comparisons(scores: dict, seed: int) -> list[dict]:
    """Conditioned vs scratch (and the full MedSegDiff vs its highway alone), paired per case."""
    out = []
    for a, b in PAIRS:
        if a in scores and b in scores:
            paired = rows_lib.paired_comparison(scores[a], scores[b], seed)
            out.append({"a": a, "b": b, **paired})
    return out


def refiner_details(b: HeldOutBenchmark) -> dict:
    """Per refiner: the MedSegDiff fusion weight chosen on validation, the uncertainty AUROC, the
    validation Dice of the refiner's own early stopping, and the refiner.json used by the protocol check."""
    import torch

    details = {}
    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    for row, spec in REFINED.items():
        folder, prior = b.refiner_folder(row), spec.prior
        if spec.overrides or not (folder / "refiner.json").is_file():
            continue
        config = json.loads((folder / "refiner.json").read_text())
        extra = torch.load(folder / "refiner_final.pth", map_location="cpu", weights_only=True)["extra_state"]
        uncertain = b.predictions(row, "0_uncertainty")
        details[row] = {
            "refiner": spec.folder_name,
            "settings": config["settings"],
            "fusion_weight": extra.get("fusion_weight"),
            "uncertainty_auroc": uncertainty_auroc(
                uncertain, b.raw / "labelsTs", b.raw / "imagesTs", dataset_json, prior=b.predictions(prior, 0)
            )
            if (uncertain / "uncertainty").is_dir()
            else None,
            "validation_dice": config.get("best_validation_dice"),
            "prior_validation_dice": config.get("prior_validation_dice"),
            "num_training_cases": len(config["training_cases"]) + len(config["validation_cases"]),
            "config": config,
        }
    return details


def learning_curves(b: HeldOutBenchmark) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per base row and fold, what nnU-Net logged per epoch (:func:`~nnunet_diffrefine.benchmark.rows.learning_curves`)."""
    return rows_lib.learning_curves({row: b.model(row) for row in BASES}, b.folds)


def targets(rows: dict[str, dict], details: dict) -> list[dict]:
    """The issue's targets, each with whether this run met it."""
    out = []

    def target(text: str, met: bool | None, value: str) -> None:
        out.append({"target": text, "met": met, "value": value})

    for r in BASES:
        if r in rows:
            target(
                f"{r} competent (mean Dice >= 0.70)",
                rows[r]["mean_dice"] >= 0.70,
                f"{rows[r]['mean_dice']:.3f}",
            )
    stock = rows.get("nnU-Net (stock)", {}).get("mean_dice")
    for r in ("MedNeXt", "Swin-UNETR"):
        if r in rows and stock is not None:
            gap = rows[r]["mean_dice"] - stock
            target(f"{r} at most 0.05 below stock nnU-Net", gap >= -0.05, f"{gap:+.3f}")
    comnet = rows.get(COMNET)
    if comnet:
        target(
            "CoMNeT: >= +0.01 mean Dice over MedNeXt, CI above 0, HD95 not worse (its paired CI reaches 0 or below)",
            comnet["delta_dice"] >= 0.01
            and comnet["delta_dice_ci95"][0] > 0
            and comnet["delta_hd95_ci95"][0] <= 0,
            f"{comnet['delta_dice']:+.3f} [{comnet['delta_dice_ci95'][0]:+.3f}, {comnet['delta_dice_ci95'][1]:+.3f}], "
            f"HD95 {delta_ci(comnet, 'hd95')} mm",
        )
    msd = rows.get("MedSegDiff (cond)")
    if msd:
        target(
            "MedSegDiff (cond) HD95 below its Swin-UNETR prior (paired CI below 0)",
            msd["delta_hd95_ci95"][1] < 0,
            f"{delta_ci(msd, 'hd95')} mm, Wilcoxon p {msd['wilcoxon_p_hd95']:.3f}",
        )
    for r in ("DDPM (cond)", "MedSegDiff (cond)", COMNET):
        if r in rows:
            target(
                f"{r} does no harm (delta Dice >= -0.005)",
                rows[r]["delta_dice"] >= -0.005,
                f"{rows[r]['delta_dice']:+.3f}",
            )
    return out


def delta_ci(r: dict, metric: str) -> str:
    """``+0.012 [-0.003, +0.020]`` for ``metric`` "dice" (3 decimals) or "hd95" (mm, 2 decimals)."""
    d = 3 if metric == "dice" else 2
    lo, hi = r[f"delta_{metric}_ci95"]
    return f"{r[f'delta_{metric}']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def results_record(b: HeldOutBenchmark, commit: str) -> dict:
    """Every row whose fold ensemble is complete, scored on the test split, with the paired statistics,
    refiner details, learning curves, protocol check and targets; ``commit``: the code's commit at the start."""
    from nnunet_diffrefine.benchmark.protocol import kfold_splits

    a = b.settings
    scores = evaluate_rows(b)
    rows = {row: row_record(row, scores, a.seed) for row in scores}
    details = refiner_details(b)
    splits = kfold_splits(b.training_cases(), a.folds)
    problems = protocol_problems(
        splits,
        b.test_cases(),
        {r: d["config"] for r, d in details.items()},
        {r: "none (nnU-Net's thresholding)" for r in rows},
    )
    record = {
        "seed": a.seed,
        "phenotype": a.phenotype,
        "profile": a.profile,
        "commit": commit,
        "dataset": b.name,
        "dataset_id": DATASET_ID,
        "settings": {
            **a.to_json(),
            "cpu_schedule": b.schedule.to_json(),
            "num_training_cases": len(b.training_cases()),
            "num_test_cases": len(b.test_cases()),
        },
        "summary": (
            f"{len(b.training_cases())} training phantoms ({a.folds}-fold cross-validation, every model on the same folds) and "
            f"{len(b.test_cases())} held-out test phantoms "
            + (
                f"at {a.shape}³"
                if a.profile == "classic"
                else "of the realistic profile (56 x 68 x 60 at 2.5 mm)"
            )
            + f", seed {a.seed}, phenotype {a.phenotype}; base models "
            f"{b.schedule.epochs} x {b.schedule.iterations} iterations (CPU schedule: AdamW {b.schedule.adamw_lr}, stock SGD "
            f"{b.schedule.stock_sgd_lr}); refiners on the out-of-fold probabilities of all training cases; every row the fold "
            "ensemble on the test split, no post-processing; means over the test cases of the mean over TC/WT/ET. "
            "`python benchmarks/bench_refinement.py`."
        ),
        "rows": list(rows.values()),
        "comparisons": comparisons(scores, a.seed),
        "refiners": {r: {k: v for k, v in d.items() if k != "config"} for r, d in details.items()},
        "per_case": scores,
        "learning_curves": learning_curves(b),
        "protocol_problems": problems,
        "stage_seconds": b.stage.seconds,
        **({"stage_unfinished_sittings": b.stage.unfinished} if b.stage.unfinished else {}),
    }
    record["targets"] = targets(rows, record["refiners"])
    return record
