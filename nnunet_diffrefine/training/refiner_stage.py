"""The second training stage of the ``<Network><Refiner>Trainer`` classes (e.g. MedNeXtCorrDiffTrainer).

One ``nnUNetv2_train`` call: the base network trains as usual; then nnU-Net's final validation writes
the base model's out-of-fold probabilities (``fold_N/validation/*.npz``), and the refiner trains on
them with the base network frozen (it is not touched again). Both are saved in the fold folder
(``checkpoint_final.pth`` and ``refiner_<name>/``). ``--c`` resumes whichever stage was interrupted:
nnU-Net's own checkpoint for the network, ``refiner_<name>/refiner_latest.pth`` for the refiner.

Refiner schedule (defaults from CoMNeT Table 1), overridable for short CPU runs:

=================================== ======================================= =======
variable                            meaning                                 default
=================================== ======================================= =======
``DIFFREFINE_REFINER_EPOCHS``       maximum refiner epochs                  50
``DIFFREFINE_REFINER_ITERS``        refiner iterations per epoch            100
``DIFFREFINE_REFINER_PATIENCE``     early-stopping patience (epochs)        15
``DIFFREFINE_REFINER_STEPS``        reverse diffusion steps at inference    25
=================================== ======================================= =======
"""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    DatasetSignature,
    RefinerSettings,
    create_refiner,
)
from nnunet_diffrefine.refine.training_data import out_of_fold_cases, split_train_val

REFINER_VARIABLES = {
    "max_epochs": ("DIFFREFINE_REFINER_EPOCHS", 50),
    "iterations_per_epoch": ("DIFFREFINE_REFINER_ITERS", 100),
    "patience": ("DIFFREFINE_REFINER_PATIENCE", 15),
    "inference_steps": ("DIFFREFINE_REFINER_STEPS", 25),
}


def refiner_schedule(environ: dict | None = None) -> dict[str, int]:
    environ = os.environ if environ is None else environ
    out = {}
    for key, (variable, default) in REFINER_VARIABLES.items():
        raw = environ.get(variable, "")
        try:
            out[key] = int(raw) if raw != "" else default
        except ValueError:
            raise InputError(f"{variable}={raw!r} is not an integer") from None
        if out[key] < 1:
            raise InputError(f"{variable}={out[key]} must be >= 1")
    return out


class RefinerStageMixin:
    """Adds the refiner stage to an nnU-Net trainer (mix in before the trainer class)."""

    refiner_name: str = ""
    refiner_settings: dict = {}
    refiner_patch_multiple: int = 4

    def refiner_folder(self) -> Path:
        return Path(self.output_folder) / f"refiner_{self.refiner_name}"  # type: ignore[attr-defined]

    def run_training(self) -> None:
        super().run_training()  # type: ignore[misc]
        self.train_refiner_stage()

    def _validation_complete(self) -> bool:
        folder = Path(self.output_folder) / "validation"  # type: ignore[attr-defined]
        return (folder / "summary.json").is_file() and any(folder.glob("*.npz"))

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        if getattr(self, "_refiner_stage_validated", False):
            self.print_to_log_file("validation of the base network already done for the refiner stage")  # type: ignore[attr-defined]
            return
        super().perform_actual_validation(save_probabilities)  # type: ignore[misc]

    def train_refiner_stage(self) -> None:
        folder = self.refiner_folder()
        log = lambda msg: self.print_to_log_file(msg, also_print_to_console=True)  # type: ignore[attr-defined]  # noqa: E731
        if (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            log(f"refiner stage: {folder} is complete, nothing to do")
            self._refiner_stage_validated = self._validation_complete()
            return
        if not self._validation_complete():
            log("refiner stage: exporting the base network's out-of-fold probabilities (final validation)")
            super().perform_actual_validation(True)  # type: ignore[misc]
        self._refiner_stage_validated = True
        cm = self.configuration_manager  # type: ignore[attr-defined]
        pre = Path(self.preprocessed_dataset_folder)  # type: ignore[attr-defined]
        cases = out_of_fold_cases(
            Path(self.output_folder) / "validation",
            pre,
            self.plans_manager,
            cm,  # type: ignore[attr-defined]
            self.label_manager,
        )  # type: ignore[attr-defined]
        train, val = split_train_val(cases)
        schedule = refiner_schedule()
        patch = [
            max(
                self.refiner_patch_multiple,
                (int(p) // self.refiner_patch_multiple) * self.refiner_patch_multiple,
            )
            for p in cm.patch_size
        ]
        settings = RefinerSettings(
            max_epochs=schedule["max_epochs"],
            iterations_per_epoch=schedule["iterations_per_epoch"],
            patience=schedule["patience"],
            patch_size=tuple(patch),
            batch_size=2,
        )
        signature = DatasetSignature.from_dataset_json(self.plans_manager.dataset_name, self.dataset_json)  # type: ignore[attr-defined]
        refiner = create_refiner(
            self.refiner_name,
            signature,
            device=self.device,  # type: ignore[attr-defined]
            inference_steps=schedule["inference_steps"],
            patch_size=patch,
            **self.refiner_settings,
        )
        log(
            f"refiner stage: training {self.refiner_name} on {len(train)} out-of-fold cases, early stopping on "
            f"{len(val)} ({settings.max_epochs} epochs x {settings.iterations_per_epoch} iterations, patch {patch})"
        )
        history = refiner.fit(train, val, folder, settings, log=log)
        refiner.save(
            folder,
            extra={
                "base_checkpoint": "checkpoint_final.pth",
                "training_cases": [c.case_id for c in train],
                "validation_cases": [c.case_id for c in val],
                "best_epoch": history.get("best_epoch"),
                "best_validation_dice": history.get("best_dice"),
                "prior_validation_dice": history.get("prior_dice"),
            },
        )
        log(
            f"refiner stage: done; validation Dice {history.get('prior_dice')} (base) -> {history.get('best_dice')} "
            f"(refined, epoch {history.get('best_epoch')}); saved in {folder}"
        )
