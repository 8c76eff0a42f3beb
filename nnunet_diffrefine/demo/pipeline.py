"""``nnunet-diffrefine demo``: the whole pipeline on synthetic data, on a CPU.

Stages: synthesize a BraTS-like dataset -> nnU-Net planning and preprocessing (with its integrity
check) -> the small-CPU plans presets -> train stock nnU-Net (``nnUNetTrainerCustomSchedule``) and
``MedNeXtCorrDiffTrainer`` briefly on fold 0 -> the benchmark on the test split (prediction with
probabilities, CorrDiff refinement, BraTS evaluation of all three, table + CSV + PNG) -> the report
of one test case (offline unless an OpenAI-compatible endpoint is configured). Every stage shows
progress, is skipped on a re-run when its outputs exist, and fails with one line naming the stage.
``tiny`` shrinks sizes and iterations on the same code path (for CI).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.data.brats import dataset_folder_name
from nnunet_diffrefine.demo.stages import Stage, command_path, run_command, run_stages

STOCK = ("nnUNetTrainerCustomSchedule", "nnUNetPlansCPU")
COMNET = ("MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. ``output`` holds nnUNet_raw, nnUNet_preprocessed and nnUNet_results
    unless those variables are already set."""

    output: Path
    dataset_id: int = 970
    name: str = "DemoBraTS"
    num_train: int = 10
    num_test: int = 4
    shape: int = 64
    seed: int = 0
    phenotype: str = "mixed"
    num_processes: int = 2
    epochs: int = 5
    iterations: int = 20
    refiner_epochs: int = 5
    refiner_iterations: int = 20
    refiner_steps: int = 10
    device: str = "cpu"

    @classmethod
    def tiny(cls, output: Path, **overrides) -> DemoConfig:
        base = dict(
            num_train=5,
            num_test=2,
            shape=40,
            epochs=1,
            iterations=2,
            refiner_epochs=1,
            refiner_iterations=2,
            refiner_steps=2,
        )
        base.update(overrides)
        return cls(output=output, **base)


def nnunet_folders(config: DemoConfig) -> dict[str, str]:
    """nnU-Net's three folders: from the environment where set, else inside ``config.output``."""
    return {
        name: os.environ.get(name) or str((config.output / name).resolve())
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    }


def build_stages(config: DemoConfig) -> tuple[list[Stage], dict[str, Path]]:
    from nnunet_diffrefine.cli.env import trainer_folder

    folders = nnunet_folders(config)
    env = dict(
        os.environ,
        **folders,
        nnUNet_extTrainer=str(trainer_folder()),
        DIFFREFINE_NUM_EPOCHS=str(config.epochs),
        DIFFREFINE_ITERS_PER_EPOCH=str(config.iterations),
        DIFFREFINE_VAL_ITERS_PER_EPOCH=str(max(1, config.iterations // 4)),
        DIFFREFINE_WARMUP_EPOCHS=str(min(5, max(0, config.epochs - 1))),
        DIFFREFINE_REFINER_EPOCHS=str(config.refiner_epochs),
        DIFFREFINE_REFINER_ITERS=str(config.refiner_iterations),
        DIFFREFINE_REFINER_STEPS=str(config.refiner_steps),
    )
    env.setdefault("nnUNet_n_proc_DA", str(config.num_processes))
    dataset = dataset_folder_name(config.dataset_id, config.name)
    raw = Path(folders["nnUNet_raw"]) / dataset
    pre = Path(folders["nnUNet_preprocessed"]) / dataset
    results = Path(folders["nnUNet_results"]) / dataset
    benchmark_dir = results / "benchmark_test"
    report_dir = config.output / "report"

    def model_folder(model: tuple[str, str]) -> Path:
        return results / f"{model[0]}__{model[1]}__3d_fullres"

    def synth() -> None:
        from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

        cfg = SynthConfig(shape=(config.shape,) * 3, seed=config.seed, phenotype=config.phenotype)
        synthesize_dataset(
            folders["nnUNet_raw"],
            config.dataset_id,
            config.name,
            config.num_train,
            config.num_test,
            cfg,
            num_processes=config.num_processes,
        )

    def preprocessed_complete() -> bool:
        data = pre / "nnUNetPlans_3d_fullres"
        if not (pre / "nnUNetPlans.json").is_file() or not data.is_dir() or not raw.is_dir():
            return False
        cases = [p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz")]
        return all((data / f"{c}.pkl").is_file() for c in cases)

    def plan_and_preprocess() -> None:
        run_command(
            [
                command_path("nnUNetv2_plan_and_preprocess"),
                "-d",
                str(config.dataset_id),
                "--verify_dataset_integrity",
                "-c",
                "3d_fullres",
                "-np",
                str(config.num_processes),
            ],
            env,
            "plan_and_preprocess",
        )

    def presets() -> None:
        from nnunet_diffrefine.training.plans_presets import write_plans_preset

        for arch in ("nnunet", "mednext"):
            write_plans_preset(
                config.dataset_id, arch, cpu=True, overwrite=True, preprocessed_root=pre.parent
            )

    def train(model: tuple[str, str], stage: str):
        def run() -> None:
            run_command(
                [
                    command_path("nnUNetv2_train"),
                    str(config.dataset_id),
                    "3d_fullres",
                    "0",
                    "-tr",
                    model[0],
                    "-p",
                    model[1],
                    "-device",
                    config.device,
                    "--npz",
                    "--c",
                ],
                env,
                stage,
            )

        return run

    def benchmark() -> None:
        from nnunet_diffrefine.benchmark.models import parse_model
        from nnunet_diffrefine.benchmark.run import run_benchmark

        old = {k: os.environ.get(k) for k in (*folders, "nnUNet_extTrainer")}
        os.environ.update({**folders, "nnUNet_extTrainer": env["nnUNet_extTrainer"]})
        try:
            models = [
                parse_model(f"nnU-Net={STOCK[0]}:{STOCK[1]}"),
                parse_model(f"CoMNeT={COMNET[0]}:{COMNET[1]}+corrdiff"),
            ]
            out = run_benchmark(
                config.dataset_id,
                models,
                [0],
                split="test",
                output=benchmark_dir,
                device=config.device,
                use_mirroring=False,
                overwrite=True,
            )
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        print((out / "benchmark.md").read_text())

    def report() -> None:
        from nnunet_diffrefine.report import load_case, write_report

        refined = benchmark_dir / "predictions" / "CoMNeT_corrdiff" / "fold_0"
        seg = sorted(refined.glob("*.nii.gz"))[0]
        case = seg.name[: -len(".nii.gz")]
        images = [raw / "imagesTs" / f"{case}_{c:04d}.nii.gz" for c in range(4)]
        reference = raw / "labelsTs" / f"{case}.nii.gz"
        outcome = write_report(
            load_case(seg, images, reference=reference, case_id=case), report_dir, overwrite=True
        )
        print(f"report for {case}: {outcome.folder / 'report.md'} ({outcome.source})")

    def trained(model: tuple[str, str], refiner: bool = False) -> bool:
        fold = model_folder(model) / "fold_0"
        done = (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()
        return done and (not refiner or (fold / "refiner_corrdiff" / "refiner_final.pth").is_file())

    stages = [
        Stage(
            "synth",
            f"synthesize {config.num_train}+{config.num_test} phantoms at {config.shape}^3 into {raw}",
            synth,
            lambda: (raw / "dataset.json").is_file(),
        ),
        Stage(
            "plan_and_preprocess",
            "nnUNetv2_plan_and_preprocess --verify_dataset_integrity (3d_fullres)",
            plan_and_preprocess,
            preprocessed_complete,
        ),
        Stage(
            "plans",
            "small-CPU plans presets for stock nnU-Net and MedNeXt",
            presets,
            lambda: all((pre / f"{p}.json").is_file() for p in (STOCK[1], COMNET[1])),
        ),
        Stage(
            "train_nnunet",
            f"nnUNetv2_train fold 0 -tr {STOCK[0]} -p {STOCK[1]} ({config.epochs} x {config.iterations} iterations)",
            train(STOCK, "train_nnunet"),
            lambda: trained(STOCK),
        ),
        Stage(
            "train_comnet",
            f"nnUNetv2_train fold 0 -tr {COMNET[0]} -p {COMNET[1]} (MedNeXt, then CorrDiff "
            f"{config.refiner_epochs} x {config.refiner_iterations})",
            train(COMNET, "train_comnet"),
            lambda: trained(COMNET, refiner=True),
        ),
        Stage(
            "benchmark",
            "predict the test split, refine with CorrDiff, evaluate, table + CSV + PNG",
            benchmark,
            lambda: (benchmark_dir / "benchmark.md").is_file(),
        ),
        Stage(
            "report",
            "radiology-style report of one refined test case",
            report,
            lambda: (report_dir / "report.md").is_file(),
        ),
    ]
    places = {
        "raw dataset": raw,
        "preprocessed": pre,
        "stock nnU-Net": model_folder(STOCK),
        "MedNeXt + CorrDiff": model_folder(COMNET),
        "benchmark": benchmark_dir,
        "report": report_dir,
        **{k: Path(v) for k, v in folders.items()},
    }
    return stages, places


def run_demo(config: DemoConfig) -> dict[str, str]:
    """Run every stage; prints where everything is and returns each stage's status."""
    stages, places = build_stages(config)
    status = run_stages(stages)
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
