"""The cross-validated refinement benchmark (real BraTS cases, or realistic phantoms under the same
protocol): which rows it compares, its typed settings, and one method per stage.

The protocol (every rule of "Measuring refinement honestly"), with cross-validated stacking because
there are only a few labelled cases and no test split to spare:

1. The cases are converted with :func:`~nnunet_diffrefine.data.convert.convert_brats` (BraTS 2021
   naming; labels 1/2/4 -> 1/2/3), or the phantoms written, and planned by nnU-Net at an isotropic
   spacing (mm; nnU-Net resamples) with ``nnUNetv2_plan_experiment -overwrite_target_spacing``, then the
   small-CPU plans presets (patch sides <= 64 voxels, batch 2).
2. K-fold cross-validation over all cases (nnU-Net's ``splits_final.json``, the same folds for every
   model). Every base model trains each fold with ``--npz``: nnU-Net's final validation of fold k (with
   mirroring) gives the out-of-fold prior of every case of fold k, from a model that never trained on it.
   A base row is the union of those out-of-fold priors (no fold ensemble: each case has exactly one
   model that did not see it).
3. Stacking: the refiner applied to the cases of fold k is trained only on the out-of-fold priors of the
   cases of the other folds (saved in ``fold_k/refiner_<name>``; its own early stopping splits those), so
   it never sees the image, the label or the prior of a case it refines.
4. No row is post-processed (nnU-Net's thresholding only).
5. Per case, mean Dice and HD95 (mm) over TC/WT/ET (BraTS convention for empty masks); for every refined
   row the paired difference to its prior over all cases (bootstrap 95 % CI, Wilcoxon signed-rank p).

Every stage is skipped when its outputs exist (trainings resume from their checkpoints); ``state.json``
in the work folder keeps the wall time and the commit of each stage. :func:`results_record` scores what
the work folder holds; :mod:`~nnunet_diffrefine.benchmark.crossval_markdown` renders it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.benchmark.models import fold_trained, train_fold
from nnunet_diffrefine.benchmark.refined import Refined
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.workspace import NnUNetCommands, StageRunner, git_commit

DATA = {  # settings.data -> (dataset id, dataset name, work folder name, results file name)
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
BASES = {  # row -> (trainer, plans preset architecture), in order of priority
    "nnU-Net (stock)": ("nnUNetTrainerCustomSchedule", "nnunet"),
    "MedNeXt": ("MedNeXtTrainer", "mednext"),
    "Swin-UNETR": ("SwinUNETRTrainer", "swinunetr"),
    "Res U-Net": ("ResUNetTrainer", "resunet"),
    "SegResNet": ("SegResNetTrainer", "segresnet"),
}


# a checkpoint_priors value of a row: the snapshots --keep-checkpoints makes the base models keep
KEPT_CHECKPOINTS = "kept"
REFINED = {
    "CorrDiff on nnU-Net": Refined("nnU-Net (stock)", "corrdiff"),
    "DDPM (cond) on nnU-Net": Refined("nnU-Net (stock)", "ddpm"),
    "MedSegDiff (cond) on nnU-Net": Refined("nnU-Net (stock)", "medsegdiff"),
    # MedSegDiff's own ablation: the same trained refiner applied with the diffusion branch dropped
    "MedSegDiff (cond) on nnU-Net, highway only (w = 0)": Refined(
        "nnU-Net (stock)", "medsegdiff", overrides={"fusion_weight": 0.0}
    ),
    "DDPM (scratch) on nnU-Net": Refined("nnU-Net (stock)", "ddpm_scratch"),
    "Control (deterministic) on nnU-Net": Refined("nnU-Net (stock)", "control"),
    # the same trained refiners allowed to change the prior only within 3 voxels of its boundary (roi.py)
    "Control (deterministic) on nnU-Net, 3-voxel band": Refined(
        "nnU-Net (stock)", "control", overrides={"change_band": 3}
    ),
    "MedSegDiff (cond) on nnU-Net, 3-voxel band": Refined(
        "nnU-Net (stock)", "medsegdiff", overrides={"change_band": 3}
    ),
    # the band set at training too, so that early stopping and the inner-CV gate decide on banded outputs
    "MedSegDiff (cond) on nnU-Net, trained in a 3-voxel band": Refined(
        "nnU-Net (stock)", "medsegdiff", changes={"change_band": 3.0}, tag="band3"
    ),
    # the augmentation ablation: trained on the real out-of-fold priors only (no perturbed priors)
    "CorrDiff on nnU-Net, real priors only": Refined(
        "nnU-Net (stock)", "corrdiff", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
    "Control on nnU-Net, real priors only": Refined(
        "nnU-Net (stock)", "control", changes={"perturbed_priors": 0.0}, tag="realonly"
    ),
    # more real priors: each fold's checkpoint_best.pth predicts its out-of-fold cases too (added to training)
    "Control on nnU-Net, + checkpoint_best priors": Refined(
        "nnU-Net (stock)", "control", changes={"checkpoint_priors": "checkpoint_best.pth"}, tag="ckptbest"
    ),
    "MedSegDiff (cond) on nnU-Net, + checkpoint_best priors": Refined(
        "nnU-Net (stock)", "medsegdiff", changes={"checkpoint_priors": "checkpoint_best.pth"}, tag="ckptbest"
    ),
    # earlier snapshots of each fold (--keep-checkpoints N ...: checkpoint_epoch_N.pth) predict its
    # out-of-fold cases too: priors with the errors of a less trained model (checkpoint_best is mostly the last)
    "Control on nnU-Net, + earlier checkpoints' priors": Refined(
        "nnU-Net (stock)", "control", changes={"checkpoint_priors": KEPT_CHECKPOINTS}, tag="ckptkept"
    ),
    "MedSegDiff (cond) on nnU-Net, + earlier checkpoints' priors": Refined(
        "nnU-Net (stock)", "medsegdiff", changes={"checkpoint_priors": KEPT_CHECKPOINTS}, tag="ckptkept"
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
PAIRS += [("MedSegDiff (cond) on nnU-Net, highway only (w = 0)", "MedSegDiff (cond) on nnU-Net")]
PAIRS += [  # are the far changes what costs HD95: each refiner against itself restricted to a band
    (r, f"{r}, 3-voxel band") for r in ("Control (deterministic) on nnU-Net", "MedSegDiff (cond) on nnU-Net")
]
PAIRS += [("MedSegDiff (cond) on nnU-Net", "MedSegDiff (cond) on nnU-Net, trained in a 3-voxel band")]
PAIRS += [  # is the augmentation needed: mixed priors (the default) against real priors only
    ("CorrDiff on nnU-Net, real priors only", "CorrDiff on nnU-Net"),
    ("Control on nnU-Net, real priors only", "Control (deterministic) on nnU-Net"),
]
PAIRS += [  # do the priors of a second checkpoint help: the final checkpoint's priors against both
    ("Control (deterministic) on nnU-Net", "Control on nnU-Net, + checkpoint_best priors"),
    ("MedSegDiff (cond) on nnU-Net", "MedSegDiff (cond) on nnU-Net, + checkpoint_best priors"),
    ("Control (deterministic) on nnU-Net", "Control on nnU-Net, + earlier checkpoints' priors"),
    ("MedSegDiff (cond) on nnU-Net", "MedSegDiff (cond) on nnU-Net, + earlier checkpoints' priors"),
]
PAIRS += [(a + UNGATED, b + UNGATED) for a, b in PAIRS]  # the same questions without the gate
# does another architecture, or a refiner on it, beat stock nnU-Net on the same folds and cases
STOCK = "nnU-Net (stock)"
BASE_PAIRS = [(STOCK, b) for b in BASES if b != STOCK]
BASE_PAIRS += [(STOCK, r) for r, spec in REFINED.items() if spec.prior != STOCK]
NEEDS_KEPT = {r for r, spec in REFINED.items() if spec.changes.get("checkpoint_priors") == KEPT_CHECKPOINTS}
DEFAULT_REFINED = tuple(r for r in REFINED if not r.endswith(UNGATED) and r not in NEEDS_KEPT)


@dataclass(frozen=True)
class CrossValSettings:
    """One run: ``data`` (a key of :data:`DATA`) read from ``real_root`` or synthesised
    (``num_phantoms``), ``folds``-fold cross-validation at ``spacing`` mm; base models ``epochs`` x
    ``iters`` iterations per fold, also keeping their weights after the ``keep_checkpoints`` epochs (the
    priors of the rows that name :data:`KEPT_CHECKPOINTS`); refiners (cpu preset) ``refiner_epochs`` x ``refiner_iters`` on a
    ``refiner_patch`` (voxels; None: the base model's), with ``refiner_set`` items ``REFINER:KEY=VALUE``,
    and a gate decided by ``gate_folds`` inner folds (0: the refiner's early-stopping cases); ``seed`` of
    the phantoms and of the bootstrap intervals; ``run_folds``: train and refine only these folds in this
    sitting (the others from an earlier run's results, ``--reference``, or a later one; None: all)."""

    work: Path
    real_root: Path
    data: str = "real"
    num_phantoms: int = 15
    folds: int = 3
    spacing: float = 2.0
    epochs: int = 80
    iters: int = 25
    refiner_epochs: int = 20
    refiner_iters: int = 25
    refiner_patch: tuple[int, int, int] | None = None
    refiner_set: tuple[str, ...] = ()
    gate_folds: int = 2
    keep_checkpoints: tuple[int, ...] = ()
    bases: tuple[str, ...] = tuple(BASES)[:3]
    refined: tuple[str, ...] = DEFAULT_REFINED
    seed: int = 0
    run_folds: tuple[int, ...] | None = None

    def folds_to_run(self) -> list[int]:
        """The folds this sitting trains and refines (``run_folds``; None: every fold)."""
        return list(range(self.folds)) if self.run_folds is None else sorted(self.run_folds)

    def __post_init__(self) -> None:
        if self.data not in DATA:
            raise InputError(f"data {self.data!r}: one of {sorted(DATA)}")
        unknown = [r for r in self.bases if r not in BASES] + [r for r in self.refined if r not in REFINED]
        if unknown:
            raise InputError(f"unknown rows {unknown}; bases: {list(BASES)}; refined: {list(REFINED)}")
        if self.folds < 2:
            raise InputError(f"cross-validation needs at least 2 folds, got {self.folds}")
        if self.run_folds is not None and (
            not self.run_folds or any(not 0 <= f < self.folds for f in self.run_folds)
        ):
            raise InputError(f"run_folds {list(self.run_folds)}: folds from 0 to {self.folds - 1}")
        if NEEDS_KEPT & set(self.refined) and not self.keep_checkpoints:
            raise InputError(
                f"rows {sorted(NEEDS_KEPT & set(self.refined))} train on the base model's snapshots: "
                "name the epochs to keep (--keep-checkpoints N [N ...])"
            )
        if any(not 1 <= n < self.epochs for n in self.keep_checkpoints):
            raise InputError(
                f"keep_checkpoints {list(self.keep_checkpoints)}: epochs from 1 to {self.epochs - 1}"
            )
        for item in self.refiner_set:
            name, _, assignment = item.partition(":")
            key, equals, _ = assignment.partition("=")
            if not (name and key and equals):
                raise InputError(f"refiner setting {item!r}: write REFINER:KEY=VALUE")

    def to_json(self) -> dict:
        """The settings saved with the results (the folders left out: they are this machine's)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("work", "real_root")}


class CrossValBenchmark:
    """Paths and settings of one run, and one method per stage; nnU-Net runs through ``nnunet``."""

    def __init__(self, settings: CrossValSettings, nnunet: NnUNetCommands, repo: Path | None = None) -> None:
        from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

        self.settings = settings
        self.nnunet = nnunet
        self.repo = repo
        self.dataset_id, dataset_name, _, _ = DATA[settings.data]
        self.work = Path(settings.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.name = f"Dataset{self.dataset_id}_{dataset_name}"
        self.raw = nnunet.folders.raw / self.name
        self.pre = nnunet.folders.preprocessed / self.name
        self.results = nnunet.folders.results / self.name
        self.source_plans = f"nnUNetPlans{str(settings.spacing).replace('.', 'p')}mm"
        self.schedule = CPUSchedule(
            epochs=settings.epochs, iterations=settings.iters, keep_checkpoints=settings.keep_checkpoints
        )
        self.folds = list(range(settings.folds))
        self.stage = StageRunner(self.work / "state.json", repo)

    # --- data ------------------------------------------------------------------------------------------
    def check_real_data(self) -> None:
        if self.settings.data != "real":
            return
        root = Path(self.settings.real_root)
        cases = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
        if not cases:
            raise InputError(
                f"the real BraTS cases are missing: {root} holds no case folders "
                "(one sub-folder per case expected; bench_refinement_real.py takes the folder as --real-root)"
            )

    def convert(self) -> None:
        """The raw dataset: the real cases converted, or the realistic phantoms written."""
        s = self.settings
        if s.data == "realistic-phantoms":
            from nnunet_diffrefine.data.synth import SynthConfig, brain_crop_grid, synthesize_dataset

            shape, spacing = brain_crop_grid(PHANTOM_SPACING_MM)
            config = SynthConfig(shape=shape, spacing=spacing, seed=s.seed, profile="realistic")
            name = self.name.split("_", 1)[1]
            synthesize_dataset(
                self.nnunet.folders.raw, self.dataset_id, name, s.num_phantoms, 0, config, num_processes=2
            )
            return
        from nnunet_diffrefine.data.convert import convert_brats

        convert_brats(
            s.real_root,
            self.nnunet.folders.raw,
            self.dataset_id,
            self.name.split("_", 1)[1],
            challenge="brats2021",
            hardlink=False,
            num_processes=2,
        )

    def plan(self) -> None:
        """nnU-Net's fingerprint, an experiment planned at the spacing (its own plans name), preprocessing."""
        spacing = [str(self.settings.spacing)] * 3
        self.nnunet.extract_fingerprint(self.dataset_id)
        options = ["-overwrite_target_spacing", *spacing, "-overwrite_plans_name", self.source_plans]
        self.nnunet.plan_experiment(self.dataset_id, options)
        self.nnunet.preprocess(self.dataset_id, self.source_plans)

    def splits_and_presets(self) -> None:
        from nnunet_diffrefine.benchmark.protocol import write_splits
        from nnunet_diffrefine.training.plans_presets import write_plans_preset

        write_splits(self.pre, self.splits())
        for _, arch in BASES.values():
            write_plans_preset(
                self.dataset_id,
                arch,
                cpu=True,
                source_plans=self.source_plans,
                overwrite=True,
                preprocessed_root=self.nnunet.folders.preprocessed,
            )

    def cases(self) -> list[str]:
        return sorted(p.name[: -len(".nii.gz")] for p in (self.raw / "labelsTr").glob("*.nii.gz"))

    def splits(self) -> list[dict]:
        from nnunet_diffrefine.benchmark.protocol import kfold_splits

        return kfold_splits(self.cases(), self.settings.folds)

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

        spec, s = REFINED[row], self.settings
        settings = refiner_settings(
            spec.refiner,
            "cpu",
            max_epochs=s.refiner_epochs,
            iterations_per_epoch=s.refiner_iters,
            gate_folds=s.gate_folds,
            patch_size=tuple(s.refiner_patch) if s.refiner_patch else None,
            **self.refiner_changes(spec.refiner),
            **self.training_changes(row, fold),
        )
        train_refiner_for_model(
            self.nnunet.folders,
            self.dataset_id,
            BASES[spec.prior][0],
            self.plans_name(spec.prior),
            "3d_fullres",
            [fold],
            spec.refiner,
            settings,
            out_of_fold_from=[f for f in self.folds if f != fold],
            overwrite=True,
            tag=spec.tag,
        )

    def training_changes(self, row: str, fold: int) -> dict:
        """Row ``row``'s changes to the refiner's settings, with ``checkpoint_priors`` "kept" resolved to the
        snapshots the base model kept (``keep_checkpoints``), which every fold that gives fold ``fold``'s
        refiner its priors must hold."""
        spec = REFINED[row]
        if spec.changes.get("checkpoint_priors") != KEPT_CHECKPOINTS:
            return spec.changes
        epochs = self.settings.keep_checkpoints  # not empty: CrossValSettings checks it for such rows
        for other in (f for f in self.folds if f != fold):
            for epoch in epochs:
                path = self.model(spec.prior) / f"fold_{other}" / f"checkpoint_epoch_{epoch}.pth"
                if not path.is_file():
                    raise InputError(
                        f"{path} does not exist: fold {other} was trained without keeping epoch {epoch} "
                        "(train it again with --keep-checkpoints)"
                    )
        names = [f"checkpoint_epoch_{epoch}.pth" for epoch in epochs]
        return {**spec.changes, "checkpoint_priors": ",".join(names)}

    def refiner_changes(self, refiner: str) -> dict[str, str]:
        """The ``refiner_set`` items of ``refiner`` (typed and checked by its settings class)."""
        changes = {}
        for item in self.settings.refiner_set:
            name, _, assignment = item.partition(":")
            key, _, value = assignment.partition("=")
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

    def patch_sizes(self) -> dict[str, list[int]]:
        out = {}
        for row in self.settings.bases:
            plans = self.pre / f"{self.plans_name(row)}.json"
            if plans.is_file():
                out[row] = json.loads(plans.read_text())["configurations"]["3d_fullres"]["patch_size"]
        return out


def run_stages(b: CrossValBenchmark, report: Callable[[], None]) -> None:
    """Every stage (see the module docstring), one base model and then its refiners at a time;
    ``report()`` rewrites the results after each base model and each refined row."""
    b.check_real_data()
    b.stage("convert", lambda: (b.raw / "dataset.json").is_file(), b.convert)
    b.stage("plan_and_preprocess", lambda: (b.pre / f"{b.source_plans}.json").is_file(), b.plan)
    b.stage("splits_and_presets", lambda: False, b.splits_and_presets)
    for row in b.settings.bases:
        for f in b.settings.folds_to_run():
            b.stage(
                f"train {row} fold {f}", lambda r=row, f=f: b.trained(r, f), lambda r=row, f=f: b.train(r, f)
            )
        report()
        for refined in [r for r in b.settings.refined if REFINED[r].prior == row]:
            for f in b.settings.folds_to_run():
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
def evaluate_folds(b: CrossValBenchmark, row: str) -> dict[int, dict[str, dict[str, float]]]:
    """Per finished fold, the per-case scores of ``row`` on that fold's cases (from its own folder); folds
    not finished are left out. Scores are cached in the work folder until the predictions change."""
    from nnunet_diffrefine.benchmark.scores import per_case_scores
    from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder

    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    _, names, _ = dataset_regions(dataset_json)
    scores: dict[int, dict[str, dict[str, float]]] = {}
    for f, split in enumerate(b.splits()):
        folder = b.prior_folder(row, f)
        if not (b.trained(row, f) if row in BASES else b.refined_complete(row, f)):
            continue
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
        scores[f] = per_case_scores(summary, names)
    return scores


def refiner_details(b: CrossValBenchmark, row: str) -> dict:
    """Per fold: the refiner's early-stopping validation Dice (prior -> refined), its gate (the blends and,
    per region, the lines ``refine`` prints: applied or not, the validation gain and HD95 change), its
    cases, settings and MedSegDiff's fusion weight."""
    import torch

    from nnunet_diffrefine.refine.gate import Gate, unit_names

    names = unit_names(json.loads((b.raw / "dataset.json").read_text()))
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
            "gate_decision": Gate.from_json(config["gate"]).describe(names) if config.get("gate") else None,
            "training_cases": config["training_cases"],
            "validation_cases": config["validation_cases"],
            "settings": config["settings"],
        }
    return out


def protocol_problems(b: CrossValBenchmark, details: dict[str, dict]) -> list[str]:
    """Every break of the stacking protocol in the refiners' saved cases (empty when kept)."""
    from nnunet_diffrefine.benchmark.protocol import stacking_problems

    problems = []
    for row, folds in details.items():
        for f, d in folds.items():
            seen = d["training_cases"] + d["validation_cases"]
            problems += stacking_problems(seen, b.splits(), int(f), f"{row} fold {f}")
    return problems


def _summary(b: CrossValBenchmark, patches: dict, command: str) -> str:
    s, schedule = b.settings, b.schedule
    data = "real BraTS 2018 cases" if s.data == "real" else "realistic adult phantoms (2 mm)"
    return (
        f"{len(b.cases())} {data}, {s.folds}-fold cross-validation (every model on the same "
        f"folds); nnU-Net planned at {s.spacing} mm isotropic, small-CPU plans (patch "
        f"{', '.join(f'{r} {p}' for r, p in patches.items())}; batch 2); base models {schedule.epochs} x "
        f"{schedule.iterations} iterations per fold (AdamW {schedule.adamw_lr}, stock SGD "
        f"{schedule.stock_sgd_lr}). A base row is each case's out-of-fold prior (nnU-Net's final validation "
        "of the fold that did not train on it, with mirroring); a refined row refines each case with the "
        "refiner trained on the other folds' out-of-fold priors only (stacking). No post-processing; scored "
        "on the original grid of each case (1 mm real, 2 mm phantoms); means over all cases of the mean over "
        "TC/WT/ET; paired bootstrap 95 % CIs and Wilcoxon p over all cases. Refiners: `cpu` preset, "
        f"{s.refiner_epochs} x {s.refiner_iters} iterations, patch "
        f"{list(s.refiner_patch) if s.refiner_patch else 'of the base model'}"
        + (f", {' '.join(s.refiner_set)}" if s.refiner_set else "")
        + ", gate decided by "
        + (f"{s.gate_folds}-fold inner cross-validation" if s.gate_folds else "the early-stopping cases")
        + f". `{command}`."
    )


def compact_reference_chain(link: dict) -> dict:
    """``link``'s chain without the sittings that measured nothing (a link whose rows equal the next's).

    A link ``{"file", "commit", "rows", "via"}`` says which rows (and folds) a run read from ``file`` at
    ``commit``; the run that wrote that file measured its ``rows`` less ``via``'s. A sitting that only
    rewrote the file adds a link with nothing of its own: dropping it keeps who measured every row and
    stops the chain from growing by one copy of all rows per sitting. Used on the reference's own chain:
    the link to the file actually read is added above it and always kept."""
    if not link.get("via"):
        return link
    tail = compact_reference_chain(link["via"])
    if _sorted_rows(link["rows"]) == _sorted_rows(tail["rows"]):
        return tail  # the run that wrote ``link``'s file measured nothing: read through to the one before
    return {**link, "via": tail}


def _sorted_rows(rows: dict[str, list[int]]) -> dict[str, list[int]]:
    return {row: sorted(folds) for row, folds in rows.items()}


def results_record(b: CrossValBenchmark, command: str, reference: Path | None = None) -> dict | None:
    """Every finished row scored: the phantom benchmark's JSON fields plus ``data``; ``command`` is the
    command line that reproduces the run. With ``reference`` (an earlier run's results JSON of the same
    protocol and folds, :mod:`~nnunet_diffrefine.benchmark.reference`), the rows and folds it scored and
    this run did not are added, and every complete row is paired with the others by case. Rows with only
    some folds scored are kept per fold in ``partial_per_case``. None before the folds exist."""
    from nnunet_diffrefine.benchmark.reference import REFERENCE_STAGE, imported_folds, read_reference
    from nnunet_diffrefine.benchmark.rows import learning_curves, paired_comparison, row_record

    s = b.settings
    if not (b.pre / "splits_final.json").is_file():
        return None
    candidates = [r for r in BASES if r in s.bases] + [r for r in REFINED if r in s.refined]
    folds = {row: fs for row in candidates if (fs := evaluate_folds(b, row))}
    details = {  # an ungated row shares its refiners with the gated one
        row: d
        for row in folds
        if row in REFINED and not row.endswith(UNGATED) and (d := refiner_details(b, row))
    }
    patches = b.patch_sizes()
    curves = learning_curves({r: b.model(r) for r in BASES if r in s.bases}, b.folds)
    settings = {
        **s.to_json(),
        "target_spacing_mm": [s.spacing] * 3,
        "patch_size": patches,
        "cpu_schedule": b.schedule.to_json(),
        "num_cases": len(b.cases()),
        "folds": b.splits(),
    }
    stage_seconds = dict(b.stage.seconds)
    unfinished = dict(b.stage.unfinished)
    if reference is not None:
        ref = read_reference(reference, settings)
        extra = imported_folds(ref, {r: set(fs) for r, fs in folds.items()}, b.splits(), Path(reference))
        unknown = [r for r in extra["scores"] if r not in BASES and r not in REFINED]
        if unknown:
            raise InputError(f"{reference}: rows {unknown} are not rows of this benchmark")
        for field, into in (("scores", folds), ("refiners", details), ("learning_curves", curves)):
            for row, per_fold in extra[field].items():
                into.setdefault(row, {}).update(per_fold)
        patches.update({r: p for r, p in extra["patch_size"].items() if r not in patches})
        stage_seconds.update({f"{k}{REFERENCE_STAGE}": v for k, v in extra["stage_seconds"].items()})
        unfinished.update({f"{k}{REFERENCE_STAGE}": v for k, v in extra["stage_unfinished_sittings"].items()})
        settings["reference"] = {
            "file": Path(reference).name,
            "commit": ref["commit"],
            "rows": {row: sorted(per_fold) for row, per_fold in extra["scores"].items()},
            # where the reference had read rows from in turn (a chain of sittings keeps its provenance)
            **(
                {"via": compact_reference_chain(ref["settings"]["reference"])}
                if ref["settings"].get("reference")
                else {}
            ),
        }
    order = [r for r in BASES if r in folds] + [r for r in REFINED if r in folds]
    complete = [r for r in order if set(folds[r]) == set(b.folds)]
    scores = {r: {c: v for f in sorted(folds[r]) for c, v in folds[r][f].items()} for r in complete}
    partial = {r: {str(f): folds[r][f] for f in sorted(folds[r])} for r in order if r not in complete}
    curves = {r: {str(f): curves[r][f] for f in sorted(curves[r], key=int)} for r in order if r in curves}
    details = {r: {str(f): details[r][f] for f in sorted(details[r], key=int)} for r in order if r in details}
    prior_of = {row: REFINED[row].prior if row in REFINED else None for row in scores}
    rows = [
        row_record(row, sc, REGIONS, prior_of[row], scores.get(prior_of[row]), s.seed)
        for row, sc in scores.items()
        if prior_of[row] is None or prior_of[row] in scores
    ]
    pairs = [
        {"a": x, "b": y, **paired_comparison(scores[x], scores[y], s.seed)}
        for x, y in PAIRS + BASE_PAIRS
        if x in scores and y in scores
    ]
    return {
        "data": "brats2018-real" if s.data == "real" else f"realistic-phantoms-seed{s.seed}",
        "seed": s.seed,
        "commit": git_commit(b.repo) if b.repo else "unknown",
        "stage_commits": b.stage.commits,
        "dataset": b.name,
        "dataset_id": b.dataset_id,
        "settings": settings,
        "summary": _summary(b, patches, command),
        "rows": rows,
        "comparisons": pairs,
        "refiners": details,
        "per_case": scores,
        **({"partial_per_case": partial} if partial else {}),
        "learning_curves": curves,
        "protocol_problems": protocol_problems(b, details),
        "stage_seconds": stage_seconds,
        **({"stage_unfinished_sittings": unfinished} if unfinished else {}),
    }
