"""``nnunet-diffrefine demo``: the pipeline on synthetic data, on a CPU.

Stages so far: synthesize a BraTS-like dataset -> nnU-Net planning and preprocessing (with
nnU-Net's dataset integrity check). Every stage is skipped on a re-run when its outputs exist.
``tiny`` shrinks sizes and counts on the same code path (for CI).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.data.brats import dataset_folder_name
from nnunet_diffrefine.demo.stages import Stage, command_path, run_command, run_stages


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

    @classmethod
    def tiny(cls, output: Path, **overrides) -> DemoConfig:
        base = dict(num_train=4, num_test=2, shape=40)
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
    env = dict(os.environ, **folders, nnUNet_extTrainer=str(trainer_folder()))
    dataset = dataset_folder_name(config.dataset_id, config.name)
    raw = Path(folders["nnUNet_raw"]) / dataset
    pre = Path(folders["nnUNet_preprocessed"]) / dataset

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
        plans = pre / "nnUNetPlans.json"
        data = pre / "nnUNetPlans_3d_fullres"
        if not plans.is_file() or not data.is_dir() or not raw.is_dir():
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
    ]
    return stages, {"raw dataset": raw, "preprocessed": pre, **{k: Path(v) for k, v in folders.items()}}


def run_demo(config: DemoConfig) -> dict[str, str]:
    """Run every stage; prints where everything is and returns each stage's status."""
    stages, places = build_stages(config)
    status = run_stages(stages)
    print("\nWhere everything is:")
    for label, path in places.items():
        print(f"  {label:>20}: {path}")
    plans = places["preprocessed"] / "nnUNetPlans.json"
    if plans.is_file():
        fullres = json.loads(plans.read_text())["configurations"]["3d_fullres"]
        print(f"  {'3d_fullres plan':>20}: patch {fullres['patch_size']}, spacing {fullres['spacing']} mm")
    return status
