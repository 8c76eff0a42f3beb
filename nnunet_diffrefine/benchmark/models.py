"""Which trained models a benchmark compares, and where nnU-Net keeps their results."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """A trained nnU-Net model: ``results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``."""

    trainer: str
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    label: str = ""
    refiners: tuple[str, ...] = ()
    """Also refine the test-split predictions with each of the fold's ``refiner_<name>`` (a row each)."""

    @property
    def name(self) -> str:
        return self.label or (
            self.trainer if self.plans == "nnUNetPlans" else f"{self.trainer} ({self.plans})"
        )

    @property
    def is_stock(self) -> bool:
        """Stock nnU-Net: ``nnUNetTrainer`` or one of its schedule-only variants."""
        return self.trainer.startswith("nnUNetTrainer")

    def results_folder(self, results_root: str | os.PathLike, dataset_name: str) -> Path:
        return Path(results_root) / dataset_name / f"{self.trainer}__{self.plans}__{self.configuration}"


def parse_model(text: str, configuration: str = "3d_fullres") -> ModelSpec:
    """``[LABEL=]TRAINER[:PLANS][+REFINER...]``, e.g. ``MedNeXtTrainer``, ``Stock=nnUNetTrainer:nnUNetPlansCPU``,
    ``MedNeXtCorrDiffTrainer+corrdiff``, ``SwinUNETRTrainer+ddpm+medsegdiff``."""
    label, _, spec = text.rpartition("=")
    spec, *refiners = spec.split("+")
    trainer, _, plans = spec.partition(":")
    if not trainer or "__" in trainer or "__" in plans or not all(refiners):
        raise InputError(
            f"model {text!r}: expected [LABEL=]TRAINER[:PLANS][+REFINER...] (nnU-Net names contain no '__')"
        )
    if len(set(refiners)) != len(refiners):
        raise InputError(f"model {text!r}: a refiner is named twice")
    return ModelSpec(
        trainer=trainer,
        plans=plans or "nnUNetPlans",
        configuration=configuration,
        label=label,
        refiners=tuple(refiners),
    )


def fold_folder(model: ModelSpec, results_root: str | os.PathLike, dataset_name: str, fold: int) -> Path:
    """``.../fold_N`` of a trained model; a clear error when it was not trained."""
    folder = model.results_folder(results_root, dataset_name) / f"fold_{fold}"
    if not (folder / "checkpoint_final.pth").is_file():
        raise InputError(
            f"{model.name}: {folder / 'checkpoint_final.pth'} does not exist; train it first with "
            f"nnUNetv2_train {dataset_name} {model.configuration} {fold} -tr {model.trainer} -p {model.plans}"
        )
    return folder


def train_fold(nnunet, schedule, dataset_id: int, trainer: str, plans: str, fold: int) -> None:
    """``nnUNetv2_train DATASET 3d_fullres FOLD -tr TRAINER -p PLANS -device cpu --npz --c`` under ``schedule``
    (:class:`~nnunet_diffrefine.training.cpu_schedule.CPUSchedule`) through ``nnunet``
    (:class:`~nnunet_diffrefine.workspace.NnUNetCommands`)."""
    nnunet.train(dataset_id, fold, trainer, plans, extra_environment=schedule.environment(trainer))


def fold_trained(fold_dir: Path) -> bool:
    """The fold finished: its final checkpoint and its scored out-of-fold validation are there."""
    return (fold_dir / "checkpoint_final.pth").is_file() and (
        fold_dir / "validation" / "summary.json"
    ).is_file()
