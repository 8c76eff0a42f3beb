"""Training a refiner on a base model's out-of-fold probabilities, and the trainers' second stage.

:func:`train_refiner` trains one refiner for one fold of a trained nnU-Net model: the base model's
out-of-fold probabilities (``fold_N/validation/*.npz``, written by ``--npz``) in its preprocessed
space are the training data (never its predictions on its own training cases); the refiner is saved
in ``fold_N/refiner_<name>/`` and an interrupted run resumes from its ``refiner_latest.pth``. It is
used by

- the ``<Network><Refiner>Trainer`` classes (e.g. ``MedNeXtCorrDiffTrainer``, through
  :class:`RefinerStageMixin`): one ``nnUNetv2_train`` call trains the base network as usual, nnU-Net's
  final validation writes its out-of-fold probabilities, and the refiner trains on them with the base
  network frozen. ``--c`` resumes whichever stage was interrupted;
- ``nnunet-diffrefine train-refiner``: a refiner for a model that is already trained (any trainer,
  stock nnU-Net included), optionally on the out-of-fold probabilities of several folds (after a
  full cross-validation every training case has one, from the fold that did not train on it).

Refiner schedule (defaults from CoMNeT Table 1), overridable for short CPU runs:

=================================== ======================================= ====================
variable                            meaning                                 default
=================================== ======================================= ====================
``DIFFREFINE_REFINER_EPOCHS``       maximum refiner epochs                  50
``DIFFREFINE_REFINER_ITERS``        refiner iterations per epoch            100
``DIFFREFINE_REFINER_PATIENCE``     early-stopping patience (epochs)        15
``DIFFREFINE_REFINER_STEPS``        reverse diffusion steps at inference    the refiner's own
=================================== ======================================= ====================

The refiner's patch is the base model's patch size, each side rounded down to a multiple the
refiner's networks can take (:attr:`~nnunet_diffrefine.refine.base.Refiner.patch_multiple`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
from nnunet_diffrefine.utils.io import OutputExistsError

REFINER_VARIABLES = {
    "max_epochs": ("DIFFREFINE_REFINER_EPOCHS", 50),
    "iterations_per_epoch": ("DIFFREFINE_REFINER_ITERS", 100),
    "patience": ("DIFFREFINE_REFINER_PATIENCE", 15),
    "inference_steps": ("DIFFREFINE_REFINER_STEPS", None),
}


def refiner_schedule(environ: dict | None = None) -> dict[str, int | None]:
    """The refiner schedule from the ``DIFFREFINE_REFINER_*`` variables (see the module docstring);
    ``inference_steps`` is None when unset (the refiner keeps its own default)."""
    environ = os.environ if environ is None else environ
    out: dict[str, int | None] = {}
    for key, (variable, default) in REFINER_VARIABLES.items():
        raw = environ.get(variable, "")
        try:
            value = int(raw) if raw != "" else default
        except ValueError:
            raise InputError(f"{variable}={raw!r} is not an integer") from None
        if value is not None and value < 1:
            raise InputError(f"{variable}={value} must be >= 1")
        out[key] = value
    return out


def refiner_folder(fold_folder: str | os.PathLike, refiner_name: str) -> Path:
    """``fold_N/refiner_<name>``."""
    return Path(fold_folder) / f"refiner_{refiner_name}"


def refiner_is_trained(fold_folder: str | os.PathLike, refiner_name: str) -> bool:
    folder = refiner_folder(fold_folder, refiner_name)
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def train_refiner(
    fold_folder: str | os.PathLike,
    refiner_name: str,
    preprocessed_folder: str | os.PathLike,
    plans_manager,
    configuration_manager,
    dataset_json: dict,
    device: str = "cpu",
    refiner_settings: dict | None = None,
    validation_folders: list[str | os.PathLike] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Train ``refiner_name`` for the model in ``fold_folder`` and return ``fold_N/refiner_<name>``.

    ``preprocessed_folder`` is ``nnUNet_preprocessed/DatasetXXX/<data_identifier>`` of the base model's
    configuration; ``validation_folders`` (default: ``fold_N/validation``) hold the out-of-fold
    ``CASE.npz`` files the refiner trains on (a fifth of them, every fifth case, for early stopping).
    A finished refiner is kept unless ``overwrite``; an interrupted one resumes.
    """
    fold_folder = Path(fold_folder)
    folder = refiner_folder(fold_folder, refiner_name)
    if refiner_is_trained(fold_folder, refiner_name):
        if not overwrite:
            raise OutputExistsError(f"{folder} already holds a trained refiner (pass --overwrite to retrain)")
        for name in (WEIGHTS_FILE, CONFIG_FILE, "refiner_latest.pth", "training_history.json"):
            (folder / name).unlink(missing_ok=True)
    sources = [Path(f) for f in validation_folders] if validation_folders else [fold_folder / "validation"]
    label_manager = plans_manager.get_label_manager(dataset_json)
    cases = []
    for source in sources:
        cases += out_of_fold_cases(
            source, preprocessed_folder, plans_manager, configuration_manager, label_manager
        )
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(
            f"cases with out-of-fold probabilities in more than one of {', '.join(map(str, sources))}: "
            f"{', '.join(twice[:5])} (each case must come from the one fold that did not train on it)"
        )
    train, val = split_train_val(cases)
    schedule = refiner_schedule()
    settings = dict(refiner_settings or {})
    if schedule["inference_steps"] is not None:
        settings["inference_steps"] = schedule["inference_steps"]
    signature = DatasetSignature.from_dataset_json(plans_manager.dataset_name, dataset_json)
    refiner = create_refiner(refiner_name, signature, device=device, **settings)
    multiple = refiner.patch_multiple
    patch = [max(multiple, (int(p) // multiple) * multiple) for p in configuration_manager.patch_size]
    training = RefinerSettings(
        max_epochs=schedule["max_epochs"],
        iterations_per_epoch=schedule["iterations_per_epoch"],
        patience=schedule["patience"],
        patch_size=tuple(patch),
        batch_size=2,
    )
    log(
        f"refiner stage: training {refiner_name} on {len(train)} out-of-fold cases, early stopping on "
        f"{len(val)} ({training.max_epochs} epochs x {training.iterations_per_epoch} iterations, patch {patch})"
    )
    history = refiner.fit(train, val, folder, training, log=log)
    refiner.save(
        folder,
        extra={
            "base_checkpoint": "checkpoint_final.pth",
            "out_of_fold_sources": [str(s) for s in sources],
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
    return folder


class RefinerStageMixin:
    """Adds the refiner stage to an nnU-Net trainer (mix in before the trainer class)."""

    refiner_name: str = ""
    refiner_settings: dict = {}

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
            device=self.device,  # type: ignore[attr-defined]
            refiner_settings=self.refiner_settings,
            log=log,
        )
