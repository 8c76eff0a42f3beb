"""The refiner stage of the ``<Network><Refiner>Trainer`` classes (e.g. ``MedNeXtCorrDiffTrainer``).

One ``nnUNetv2_train`` call trains the base network as usual, nnU-Net's final validation writes its
out-of-fold probabilities, and the refiner trains on them with the base network frozen
(:func:`nnunet_diffrefine.refine.train.train_refiner`); ``--c`` resumes whichever stage was
interrupted. nnU-Net builds trainers with a fixed constructor, so the refiner's settings can only
reach it through the environment; these variables are read by :mod:`nnunet_diffrefine.environment`
(the ``train-refiner`` command takes the same settings as flags):

=================================== ========================================= ==========================
variable                            refiner setting                           default
=================================== ========================================= ==========================
``DIFFREFINE_REFINER_PRESET``       the preset (``paper``, ``cpu``, ``tiny``)  ``paper`` (the paper's)
``DIFFREFINE_REFINER_EPOCHS``       ``max_epochs``                            the preset's
``DIFFREFINE_REFINER_ITERS``        ``iterations_per_epoch``                  the preset's
``DIFFREFINE_REFINER_PATIENCE``     ``patience``                              the preset's
``DIFFREFINE_REFINER_LR``           ``learning_rate``                         the preset's
``DIFFREFINE_REFINER_BATCH``        ``batch_size``                            the preset's
``DIFFREFINE_REFINER_STEPS``        ``inference_steps``                       the preset's
=================================== ========================================= ==========================

The settings used are written to the training log, ``refiner.json`` and every refiner checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from nnunet_diffrefine.environment import refiner_stage_settings
from nnunet_diffrefine.refine.priors import out_of_fold_prediction
from nnunet_diffrefine.refine.settings import RefinerSettings
from nnunet_diffrefine.refine.train import refiner_folder, refiner_is_trained, train_refiner


def settings_from_environment(refiner_name: str, environ: dict | None = None) -> RefinerSettings:
    """The refiner's settings from the ``DIFFREFINE_REFINER_*`` variables (see the module docstring)."""
    return refiner_stage_settings(refiner_name, environ)


class RefinerStageMixin:
    """Adds the refiner stage to an nnU-Net trainer (mix in before the trainer class)."""

    refiner_name: str = ""

    def refiner_folder(self) -> Path:
        return refiner_folder(self.output_folder, self.refiner_name)  # type: ignore[attr-defined]

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
        log = lambda msg: self.print_to_log_file(msg, also_print_to_console=True)  # type: ignore[attr-defined]  # noqa: E731
        if refiner_is_trained(self.output_folder, self.refiner_name):  # type: ignore[attr-defined]
            log(f"refiner stage: {self.refiner_folder()} is complete, nothing to do")
            self._refiner_stage_validated = self._validation_complete()
            return
        settings = settings_from_environment(self.refiner_name)
        if not self._validation_complete():
            log("refiner stage: exporting the base network's out-of-fold probabilities (final validation)")
            super().perform_actual_validation(True)  # type: ignore[misc]
        self._refiner_stage_validated = True
        train_refiner(
            self.output_folder,  # type: ignore[attr-defined]
            self.refiner_name,
            self.preprocessed_dataset_folder,  # type: ignore[attr-defined]
            self.plans_manager,  # type: ignore[attr-defined]
            self.configuration_manager,  # type: ignore[attr-defined]
            self.dataset_json,  # type: ignore[attr-defined]
            settings=settings,
            device=self.device,  # type: ignore[attr-defined]
            training_priors=out_of_fold_prediction(self.inference_allowed_mirroring_axes),  # type: ignore[attr-defined]
            log=log,
        )
