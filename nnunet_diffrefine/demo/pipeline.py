"""``nnunet-diffrefine demo``: the whole pipeline on synthetic data, on a CPU.

Stages: synthesize a BraTS-like dataset -> nnU-Net planning and preprocessing (with its integrity
check) -> a 2-fold split (``splits_final.json``: fold 0 trains on half the training cases and
predicts the other half, so the refiner gets that many out-of-fold cases) and the small-CPU plans
presets -> train stock nnU-Net (``nnUNetTrainerCustomSchedule``) and MedNeXt (``MedNeXtTrainer``,
``--npz``) on fold 0 under the CPU schedule
(:class:`~nnunet_diffrefine.training.cpu_schedule.CPUSchedule`: the same iterations for both, a
learning rate that moves them in a few hundred iterations) -> train CorrDiff on MedNeXt's out-of-fold
probabilities (typed settings, the ``cpu`` preset) -> the benchmark on the test split (prediction
with probabilities and test-time mirroring, as the out-of-fold priors were predicted; CorrDiff
refinement; BraTS evaluation of all three; table + CSV + PNG) -> the report of one refined test case
(offline unless an OpenAI-compatible endpoint is configured). Every stage shows progress, is skipped
on a re-run when its outputs exist, and fails with one line naming the stage. ``tiny`` shrinks sizes
and iterations on the same code path (for CI).

nnU-Net's trainers are built by ``nnUNetv2_train`` with a fixed constructor: their short schedule
reaches them through the ``DIFFREFINE_*`` variables (:mod:`nnunet_diffrefine.training.schedule`), the
only door there is. Everything else gets its settings as arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.data.brats import dataset_folder_name
from nnunet_diffrefine.workspace import NnUNetCommands, NnUNetFolders, Stage, StageRunner

STOCK = ("nnUNetTrainerCustomSchedule", "nnUNetPlansCPU")
MEDNEXT = ("MedNeXtTrainer", "nnUNetPlansMedNeXtCPU")
REFINER = "corrdiff"
ROWS = {"stock": "nnU-Net", "mednext": "MedNeXt"}
PLANS = (STOCK[1], MEDNEXT[1])


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. ``output`` holds nnUNet_raw, nnUNet_preprocessed and nnUNet_results, except
    those given in ``folders`` (the command line passes the variables that are set)."""

    output: Path
    folders: NnUNetFolders = NnUNetFolders()
    dataset_id: int = 970
    name: str = "DemoBraTS"
    num_train: int = 16
    num_test: int = 4
    profile: str = "classic"
    """Synthesis profile: ``classic`` (voxel-separable phantoms, ``shape``³ over the BraTS field of view:
    the default, because the whole demo fits in 15 min on 2 CPU cores) or ``realistic`` (phantoms as hard
    as real scans: the box around the brain at ``spacing`` mm; at 3.5 mm MedNeXt's CPU patch is
    48 x 64 x 48 and one of its epochs took 68-73 s on 2 cores, about 2.6x the classic grid's, so that
    demo takes roughly twice as long; not measured whole)."""
    shape: int = 48
    spacing: float = 3.5
    """Grid of the realistic profile (mm): 40 x 49 x 43 voxels at 3.5 mm."""
    seed: int = 0
    phenotype: str = "adult"
    num_processes: int = 2
    num_folds: int = 2
    epochs: int = 10
    """Base models: ``epochs`` x ``iterations``. With the refiner's 3 trainings (the gate's 2-fold inner
    cross-validation and the final one) the demo's stages took 13 min 8 s on 2 cores: 16 epochs and 8
    refiner epochs of 20 iterations took 24 min (MedNeXt 506 s, CorrDiff 689 s)."""
    iterations: int = 25
    refiner_preset: str = "cpu"
    refiner_epochs: int = 4
    refiner_iterations: int = 16
    refiner_steps: int = 4
    device: str = "cpu"
    intensity_samples: int | None = 1_000_000
    """Foreground intensities nnU-Net's fingerprint draws per channel in total (``None``: nnU-Net's 10^8,
    most of the time planning takes on a small dataset; only CT normalisation reads them, these MRI
    plans do not: :mod:`nnunet_diffrefine.workspace.fingerprint`)."""

    @classmethod
    def tiny(cls, output: Path, **overrides) -> DemoConfig:
        base = dict(
            profile="realistic",  # the realistic synthesis path, on its coarsest grid
            num_train=5,
            num_test=2,
            shape=40,
            spacing=4.0,
            epochs=1,
            iterations=2,
            refiner_preset="tiny",
            refiner_epochs=1,
            refiner_iterations=2,
            refiner_steps=2,
        )
        base.update(overrides)
        return cls(output=output, **base)

    def synth_config(self):
        """The phantoms' :class:`~nnunet_diffrefine.data.synth.SynthConfig` (grid by ``profile``)."""
        from nnunet_diffrefine.data.synth import SynthConfig, brain_crop_grid

        if self.profile == "realistic":
            shape, spacing = brain_crop_grid(self.spacing)
            grid = dict(shape=shape, spacing=spacing)
        else:
            grid = dict(shape=(self.shape,) * 3)
        return SynthConfig(**grid, seed=self.seed, phenotype=self.phenotype, profile=self.profile)

    def describe_grid(self) -> str:
        """``40 x 49 x 43 voxels at 3.5 mm (realistic)``: what the synth stage writes."""
        config = self.synth_config()
        shape, spacing = config.shape, config.grid_spacing()
        return f"{' x '.join(map(str, shape))} voxels at {spacing[0]:g} mm ({self.profile})"

    def nnunet_folders(self) -> NnUNetFolders:
        """The demo's nnU-Net folders: those of ``folders``, the others under ``output``."""
        return self.folders.with_defaults(NnUNetFolders.under(self.output))

    def schedule(self):
        """The base models' CPU schedule (same iterations for both; each trainer's learning rate)."""
        from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

        return CPUSchedule(
            epochs=self.epochs,
            iterations=self.iterations,
            val_iterations=max(1, self.iterations // 5),
            warmup_epochs=min(2, self.epochs - 1),
        )

    def describe_schedule(self, trainer: str, optimizer: str) -> str:
        """``10 x 25 iterations, SGD lr 0.1``: what a training stage runs."""
        schedule = self.schedule()
        lr = schedule.stock_sgd_lr if trainer.startswith("nnUNetTrainer") else schedule.adamw_lr
        return f"{schedule.epochs} x {schedule.iterations} iterations, {optimizer} lr {lr}"

    def refiner_settings(self):
        """CorrDiff's typed settings: the preset, with the demo's schedule."""
        from nnunet_diffrefine.refine.registry import refiner_settings

        return refiner_settings(
            REFINER,
            self.refiner_preset,
            max_epochs=self.refiner_epochs,
            iterations_per_epoch=self.refiner_iterations,
            inference_steps=self.refiner_steps,
            warmup_epochs=min(2, self.refiner_epochs - 1),
        )


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo's stages read and write."""

    folders: NnUNetFolders
    raw: Path
    preprocessed: Path
    results: Path
    benchmark: Path
    report: Path

    @classmethod
    def of(cls, config: DemoConfig) -> DemoPaths:
        folders = config.nnunet_folders()
        dataset = dataset_folder_name(config.dataset_id, config.name)
        results = folders.results / dataset
        return cls(
            folders,
            folders.raw / dataset,
            folders.preprocessed / dataset,
            results,
            results / "benchmark_test",
            config.output / "report",
        )

    def model(self, model: tuple[str, str]) -> Path:
        return self.results / f"{model[0]}__{model[1]}__3d_fullres"


def synthesize(config: DemoConfig, paths: DemoPaths) -> None:
    from nnunet_diffrefine.data.synth import synthesize_dataset

    synthesize_dataset(
        paths.folders.raw,
        config.dataset_id,
        config.name,
        config.num_train,
        config.num_test,
        config.synth_config(),
        num_processes=config.num_processes,
    )


def preprocessed_complete(paths: DemoPaths) -> bool:
    data = paths.preprocessed / "nnUNetPlans_3d_fullres"
    if not (paths.preprocessed / "nnUNetPlans.json").is_file() or not data.is_dir() or not paths.raw.is_dir():
        return False
    cases = [p.name[: -len(".nii.gz")] for p in (paths.raw / "labelsTr").glob("*.nii.gz")]
    return all((data / f"{c}.pkl").is_file() for c in cases)


def plan_and_preprocess(config: DemoConfig, nnunet: NnUNetCommands) -> None:
    nnunet.plan_and_preprocess(config.dataset_id, verify_integrity=True)


def write_presets(config: DemoConfig, paths: DemoPaths) -> None:
    from nnunet_diffrefine.benchmark.protocol import kfold_splits, write_splits
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    cases = sorted(p.name[: -len(".nii.gz")] for p in (paths.raw / "labelsTr").glob("*.nii.gz"))
    write_splits(paths.preprocessed, kfold_splits(cases, config.num_folds))
    for arch in ("nnunet", "mednext"):
        write_plans_preset(
            config.dataset_id, arch, cpu=True, overwrite=True, preprocessed_root=paths.preprocessed.parent
        )


def train_base(config: DemoConfig, nnunet: NnUNetCommands, model: tuple[str, str]) -> None:
    schedule = config.schedule().environment(model[0])
    nnunet.train(config.dataset_id, 0, model[0], model[1], device=config.device, extra_environment=schedule)


def base_trained(paths: DemoPaths, model: tuple[str, str]) -> bool:
    fold = paths.model(model) / "fold_0"
    return (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()


def train_corrdiff(config: DemoConfig, paths: DemoPaths) -> None:
    from nnunet_diffrefine.refine.train import train_refiner_for_model

    train_refiner_for_model(
        paths.folders,
        config.dataset_id,
        *MEDNEXT,
        "3d_fullres",
        [0],
        REFINER,
        config.refiner_settings(),
        device=config.device,
    )


def benchmark(config: DemoConfig, paths: DemoPaths) -> None:
    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark

    models = [
        parse_model(f"{ROWS['stock']}={STOCK[0]}:{STOCK[1]}"),
        parse_model(f"{ROWS['mednext']}={MEDNEXT[0]}:{MEDNEXT[1]}+{REFINER}"),
    ]
    out = run_benchmark(
        paths.folders,
        config.dataset_id,
        models,
        [0],
        split="test",
        output=paths.benchmark,
        device=config.device,
        overwrite=True,
    )
    print((out / "benchmark.md").read_text())


def report(paths: DemoPaths) -> None:
    from nnunet_diffrefine.report import load_case, write_report

    refined = paths.benchmark / "predictions" / f"{ROWS['mednext']}_CorrDiff" / "fold_0"
    seg = sorted(refined.glob("*.nii.gz"))[0]
    case = seg.name[: -len(".nii.gz")]
    images = [paths.raw / "imagesTs" / f"{case}_{c:04d}.nii.gz" for c in range(4)]
    reference = paths.raw / "labelsTs" / f"{case}.nii.gz"
    outcome = write_report(
        load_case(seg, images, reference=reference, case_id=case), paths.report, overwrite=True
    )
    print(f"report for {case}: {outcome.folder / 'report.md'} ({outcome.source})")


def _places(paths: DemoPaths) -> dict[str, Path]:
    return {
        "raw dataset": paths.raw,
        "preprocessed": paths.preprocessed,
        "stock nnU-Net": paths.model(STOCK),
        "MedNeXt + CorrDiff": paths.model(MEDNEXT),
        "benchmark": paths.benchmark,
        "report": paths.report,
        **{k: Path(v) for k, v in paths.folders.variables().items()},
    }


def demo_commands(
    config: DemoConfig, paths: DemoPaths, environment: Mapping[str, str] | None
) -> NnUNetCommands:
    """nnU-Net's commands in the demo's folders, with its process count and fingerprint draws."""
    return NnUNetCommands(
        paths.folders,
        dict(environment or {}),
        config.num_processes,
        echo=False,
        intensity_samples=config.intensity_samples,
    )


def build_stages(config: DemoConfig, environment: Mapping[str, str] | None = None):
    """The demo's stages in order, and the places worth showing the user (``list[Stage]``, ``{label: Path}``).
    ``environment``: what nnU-Net's commands inherit (the command line passes its own)."""
    paths = DemoPaths.of(config)
    nnunet = demo_commands(config, paths, environment)
    refiner_done = paths.model(MEDNEXT) / "fold_0" / f"refiner_{REFINER}" / "refiner_final.pth"
    schedule = config.describe_schedule
    stages = [
        Stage(
            "synth",
            f"synthesize {config.num_train}+{config.num_test} phantoms, {config.describe_grid()}, into {paths.raw}",
            lambda: synthesize(config, paths),
            lambda: (paths.raw / "dataset.json").is_file(),
        ),
        Stage(
            "plan_and_preprocess",
            "nnUNetv2_plan_and_preprocess --verify_dataset_integrity (3d_fullres)",
            lambda: plan_and_preprocess(config, nnunet),
            lambda: preprocessed_complete(paths),
        ),
        Stage(
            "plans",
            f"a {config.num_folds}-fold split and the small-CPU plans presets for stock nnU-Net and MedNeXt",
            lambda: write_presets(config, paths),
            lambda: all((paths.preprocessed / f"{p}.json").is_file() for p in (*PLANS, "splits_final")),
        ),
        Stage(
            "train_nnunet",
            f"nnUNetv2_train fold 0 -tr {STOCK[0]} -p {STOCK[1]} ({schedule(STOCK[0], 'SGD')})",
            lambda: train_base(config, nnunet, STOCK),
            lambda: base_trained(paths, STOCK),
        ),
        Stage(
            "train_mednext",
            f"nnUNetv2_train fold 0 -tr {MEDNEXT[0]} -p {MEDNEXT[1]} --npz ({schedule(MEDNEXT[0], 'AdamW')})",
            lambda: train_base(config, nnunet, MEDNEXT),
            lambda: base_trained(paths, MEDNEXT),
        ),
        Stage(
            "train_corrdiff",
            f"CorrDiff on MedNeXt's out-of-fold probabilities ({config.refiner_settings().summary()})",
            lambda: train_corrdiff(config, paths),
            refiner_done.is_file,
        ),
        Stage(
            "benchmark",
            "predict the test split, refine with CorrDiff, evaluate, table + CSV + PNG",
            lambda: benchmark(config, paths),
            lambda: (paths.benchmark / "benchmark.md").is_file(),
        ),
        Stage(
            "report",
            "radiology-style report of one refined test case",
            lambda: report(paths),
            lambda: (paths.report / "report.md").is_file(),
        ),
    ]
    return stages, _places(paths)


def run_demo(config: DemoConfig, environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """Run every stage; prints where everything is and returns each stage's status."""
    stages, places = build_stages(config, environment)
    status = StageRunner().run(stages)
    print("\nWhere everything is:")
    for label, path in places.items():
        print(f"  {label:>20}: {path}")
    table = places["benchmark"] / "benchmark.md"
    if table.is_file():
        print(f"  {'table':>20}: {table}  (and benchmark.csv, benchmark_dice.png)")
    plans = places["preprocessed"] / "nnUNetPlans.json"
    if plans.is_file():
        fullres = json.loads(plans.read_text())["configurations"]["3d_fullres"]
        print(f"  {'3d_fullres plan':>20}: patch {fullres['patch_size']}, spacing {fullres['spacing']} mm")
    return status
