"""Training a refiner on a trained nnU-Net model's out-of-fold probabilities.

:func:`train_refiner` trains one refiner for one fold: the base model's out-of-fold probabilities
(``fold_N/validation/*.npz``, written by ``nnUNetv2_train ... --npz``), moved into its preprocessed
space, are the training data, never its predictions on its own training cases. The refiner is saved
in ``fold_N/refiner_<name>/`` with its settings, the cases it saw and how their priors were predicted
(:mod:`.priors`); an interrupted run resumes from its ``refiner_latest.pth``.
:func:`train_refiner_for_model` does it for the folds of a model in ``nnUNet_results`` (the
``train-refiner`` command), optionally on the out-of-fold probabilities of several folds together.

A refiner without a patch size in its settings takes the base model's patch, each side rounded down
to a multiple its networks can take.

Before the refiner is trained on all the cases, an inner cross-validation (``gate_folds`` folds, in
``refiner_<name>/gate/fold_i``) refines every case with a refiner that did not train on it and decides
where the refiner is applied (:mod:`.gate`); the :class:`~.gate.Gate` is saved in ``refiner.json``.
With ``gate_folds`` 0 the final refiner's own early-stopping cases decide (fewer cases, a weak test).
Unconditional (scratch) refiners replace the prior instead of correcting it and get no gate.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import CONFIG_FILE, WEIGHTS_FILE, DatasetSignature, TrainingCase
from nnunet_diffrefine.refine.checkpoint_priors import add_checkpoint_priors, checkpoint_names
from nnunet_diffrefine.refine.gate import blend_gains, blend_hd95_changes, decide_gate, unit_names
from nnunet_diffrefine.refine.priors import PriorPrediction, out_of_fold_prediction_of
from nnunet_diffrefine.refine.registry import refiner_class
from nnunet_diffrefine.refine.run import load_model_context
from nnunet_diffrefine.refine.settings import RefinerSettings
from nnunet_diffrefine.refine.training_data import out_of_fold_cases, split_train_val
from nnunet_diffrefine.refine.training_loop import HISTORY_FILE, LATEST_FILE
from nnunet_diffrefine.utils.io import OutputExistsError, write_json
from nnunet_diffrefine.workspace.folders import NnUNetFolders


def refiner_folder(fold_folder: str | os.PathLike, refiner_name: str, tag: str | None = None) -> Path:
    """``fold_N/refiner_<name>``, or ``fold_N/refiner_<name>__<tag>`` for a variant trained with other
    settings next to it (``refine --refiner <name>__<tag>`` applies that one)."""
    if tag is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", tag):
        raise InputError(f"refiner tag {tag!r}: use letters, digits, '_' and '-' only")
    return Path(fold_folder) / (f"refiner_{refiner_name}" + (f"__{tag}" if tag else ""))


def refiner_is_trained(fold_folder: str | os.PathLike, refiner_name: str, tag: str | None = None) -> bool:
    folder = refiner_folder(fold_folder, refiner_name, tag)
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def resolve_patch(cls, settings: RefinerSettings, base_patch) -> RefinerSettings:
    """``settings`` with the base model's patch (rounded down to the refiner's multiple) where it has none.

    A 2d configuration's patch is 2-D and the refiners are 3-D: there the patch must be given."""
    if settings.patch_size is not None:
        return settings
    if len(base_patch) != 3:
        raise InputError(
            f"the base model's patch {list(base_patch)} is {len(base_patch)}-D (a 2d configuration) and the "
            f"refiners work on 3-D patches: give one with --patch-size Z,Y,X (e.g. 32,{base_patch[-2]},{base_patch[-1]})"
        )
    multiple = cls.patch_multiple_of(settings)
    return settings.replace(
        patch_size=tuple(max(multiple, (int(p) // multiple) * multiple) for p in base_patch)
    )


def _training_cases(
    sources: list[Path], preprocessed_folder, plans_manager, configuration_manager, label_manager
):
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
    return cases


GATE_FOLDER = "gate"
GAINS_FILE = "gains.json"
HD95_FILE = "hd95_changes.json"


def _clear(folder: Path, overwrite: bool) -> None:
    if (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
        if not overwrite:
            raise OutputExistsError(f"{folder} already holds a trained refiner (pass --overwrite to retrain)")
        for name in (WEIGHTS_FILE, CONFIG_FILE, LATEST_FILE, HISTORY_FILE):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / GATE_FOLDER, ignore_errors=True)


def _gains(
    refiner, cases: list[TrainingCase], regions: bool, spacing: tuple[float, ...] | None = None
) -> tuple[dict[str, list], dict[str, list]]:
    """``{case: blend_gains}`` of ``refiner`` on ``cases`` (case ``i`` sampled with seed ``i``) and, with
    a ``spacing`` (mm, ``(z, y, x)``), ``{case: blend_hd95_changes}`` (else empty)."""
    gains, hd95_changes = {}, {}
    for i, c in enumerate(cases):
        refined = refiner.refine(c.prior, c.image, seed=i)
        gains[c.case_id] = blend_gains(c.prior, refined, c.target, regions).tolist()
        if spacing is not None:
            changes = blend_hd95_changes(c.prior, refined, c.target, regions, spacing)
            hd95_changes[c.case_id] = [[None if np.isnan(v) else float(v) for v in row] for row in changes]
    return gains, hd95_changes


def cross_validated_gains(
    cls,
    signature: DatasetSignature,
    settings: RefinerSettings,
    cases: list[TrainingCase],
    folder: Path,
    device,
    log,
    spacing: tuple[float, ...] | None = None,
) -> tuple[dict[str, list], dict[str, list]]:
    """Every case refined by a refiner trained on the other ``settings.gate_folds`` - 1 inner folds
    (case ``j`` of the sorted ids is in inner fold ``j % gate_folds``): ``({case: blend_gains},
    {case: blend_hd95_changes})`` (the second empty without a ``spacing``, mm ``(z, y, x)``); finished
    folds are read back."""
    k = settings.gate_folds
    if k > len(cases):
        raise InputError(
            f"gate_folds={k} needs at least {k} out-of-fold cases, there are {len(cases)} "
            "(use fewer gate folds, or 0 to decide on the early-stopping cases)"
        )
    ordered = sorted(cases, key=lambda c: c.case_id)
    gains: dict[str, list] = {}
    hd95_changes: dict[str, list] = {}
    for i in range(k):
        sub = folder / GATE_FOLDER / f"fold_{i}"
        held = ordered[i::k]
        if (sub / GAINS_FILE).is_file():
            gains.update(json.loads((sub / GAINS_FILE).read_text()))
            if (sub / HD95_FILE).is_file():
                hd95_changes.update(json.loads((sub / HD95_FILE).read_text()))
            continue
        rest = [c for j, c in enumerate(ordered) if j % k != i]
        train, val = split_train_val(rest, settings.val_fraction)
        log(f"gate fold {i}/{k}: training on {len(rest)} cases, refining {len(held)} it did not see")
        inner = cls(signature, settings, device=device)
        inner.fit(train, val, sub, log=log)
        fold_gains, fold_hd95 = _gains(inner, held, signature.regions, spacing)
        if spacing is not None:
            write_json(fold_hd95, sub / HD95_FILE)
        write_json(fold_gains, sub / GAINS_FILE)
        gains.update(fold_gains)
        hd95_changes.update(fold_hd95)
    return gains, hd95_changes


def train_refiner(
    fold_folder: str | os.PathLike,
    refiner_name: str,
    preprocessed_folder: str | os.PathLike,
    plans_manager,
    configuration_manager,
    dataset_json: dict,
    settings: RefinerSettings | None = None,
    device: str = "cpu",
    validation_folders: list[str | os.PathLike] | None = None,
    training_priors: PriorPrediction | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    tag: str | None = None,
) -> Path:
    """Train ``refiner_name`` for the model in ``fold_folder`` and return ``fold_N/refiner_<name>``
    (``refiner_<name>__<tag>`` with a ``tag``).

    ``preprocessed_folder`` is ``nnUNet_preprocessed/DatasetXXX/<data_identifier>`` of the base model's
    configuration; ``validation_folders`` (default: ``fold_N/validation``) hold the out-of-fold
    ``CASE.npz`` files; ``settings`` default to the refiner's (the paper's); ``training_priors`` say how
    those probabilities were predicted (default: read from the fold's checkpoint).
    """
    fold_folder = Path(fold_folder)
    cls = refiner_class(refiner_name)
    folder = refiner_folder(fold_folder, refiner_name, tag)
    _clear(folder, overwrite)
    sources = [Path(f) for f in validation_folders] if validation_folders else [fold_folder / "validation"]
    label_manager = plans_manager.get_label_manager(dataset_json)
    cases = _training_cases(sources, preprocessed_folder, plans_manager, configuration_manager, label_manager)
    settings = resolve_patch(cls, settings or cls.settings_class(), configuration_manager.patch_size)
    checkpoints = checkpoint_names(getattr(settings, "checkpoint_priors", "none")) if cls.uses_prior else []
    cases, checkpoint_sources = add_checkpoint_priors(
        cases, sources, checkpoints, preprocessed_folder, plans_manager, configuration_manager, device, log
    )
    train, val = split_train_val(cases, settings.val_fraction)
    signature = DatasetSignature.from_dataset_json(plans_manager.dataset_name, dataset_json)
    refiner = cls(signature, settings, device=device)
    priors = training_priors or out_of_fold_prediction_of(fold_folder)
    log(
        f"refiner stage: training {refiner_name} on {len(train)} out-of-fold cases, early stopping on "
        f"{len(val)} ({settings.preset} preset: {settings.max_epochs} epochs x {settings.iterations_per_epoch} "
        f"iterations, lr {settings.learning_rate}, patch {list(settings.patch_size)})"
    )
    gains, cross_validated = None, False
    spacing = None if settings.gate_hd95_tolerance is None else tuple(configuration_manager.spacing)
    if spacing is not None and len(spacing) != 3:
        log("refiner stage: a 2d configuration has no fixed slice spacing: the gate checks Dice, not HD95")
        spacing = None
    if refiner.uses_prior and settings.gate_folds:
        gains, hd95_changes = cross_validated_gains(
            cls, signature, settings, cases, folder, device, log, spacing
        )
        cross_validated = True
    history = refiner.fit(train, val, folder, log=log)
    gate = None
    if refiner.uses_prior:
        if not gains:
            gains, hd95_changes = _gains(refiner, val, signature.regions, spacing)
        gate = decide_gate(
            gains,
            signature.regions,
            settings.seed,
            hd95_changes=None if spacing is None else hd95_changes,
            hd95_tolerance_mm=math.inf if spacing is None else settings.gate_hd95_tolerance * max(spacing),
            min_cases=settings.gate_min_cases,
        )
        for line in gate.describe(unit_names(dataset_json)):
            log(f"refiner stage: gate: {line}")
    refiner.save(
        folder,
        extra={
            "base_checkpoint": "checkpoint_final.pth",
            "out_of_fold_sources": [str(s) for s in sources],
            "checkpoint_prior_sources": checkpoint_sources,
            "training_priors": priors.to_json(),
            "training_cases": [c.case_id for c in train],
            "validation_cases": [c.case_id for c in val],
            "best_epoch": history.get("best_epoch"),
            "best_validation_dice": history.get("best_dice"),
            "prior_validation_dice": history.get("prior_dice"),
            "gate": gate.to_json() if gate else None,
            "gate_source": (
                None
                if gate is None
                else f"{settings.gate_folds}-fold inner cross-validation"
                if cross_validated
                else "the early-stopping cases"
            ),
        },
    )
    log(
        f"refiner stage: done; validation Dice {history.get('prior_dice')} (base) -> {history.get('best_dice')} "
        f"(refined, epoch {history.get('best_epoch')}); saved in {folder}"
    )
    return folder


def _preprocessed_data(context, folders: NnUNetFolders) -> Path:
    """``nnUNet_preprocessed/DatasetXXX_NAME/<data identifier>``: the base model's preprocessed cases."""
    root = folders.require("nnUNet_preprocessed")
    preprocessed = root / context.plans_manager.dataset_name / context.configuration_manager.data_identifier
    if not preprocessed.is_dir():
        raise InputError(
            f"{preprocessed} does not exist: the refiner trains on the base model's preprocessed data "
            f"(run nnUNetv2_plan_and_preprocess)"
        )
    return preprocessed


def train_refiner_for_model(
    folders: NnUNetFolders,
    dataset: str | int,
    trainer: str,
    plans: str,
    configuration: str,
    folds: list[int],
    refiner: str,
    settings: RefinerSettings | None = None,
    out_of_fold_from: list[int] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    tag: str | None = None,
) -> list[Path]:
    """Train ``refiner`` for each fold of ``nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``
    (nnU-Net's folders as ``folders``).

    Each fold's refiner trains on that fold's out-of-fold probabilities, or on those of the folds
    ``out_of_fold_from`` together. Returns the ``fold_N/refiner_<name>`` folders (``__<tag>`` appended
    with a ``tag``: a variant next to the default one).
    """
    if tag is not None:
        refiner_folder(".", refiner, tag)  # a bad tag fails before any work
    refiner_class(refiner)
    model = folders.model_folder(dataset, trainer, plans, configuration)
    context = load_model_context(model)
    preprocessed = _preprocessed_data(context, folders)
    sources = [model / f"fold_{f}" / "validation" for f in out_of_fold_from] if out_of_fold_from else None
    for fold in folds:
        checkpoint = model / f"fold_{fold}" / "checkpoint_final.pth"
        if not checkpoint.is_file():
            raise InputError(f"{checkpoint} does not exist: finish nnUNetv2_train for fold {fold} first")
    done = []
    for fold in folds:
        log(f"fold {fold}: training the {refiner} refiner")
        done.append(
            train_refiner(
                model / f"fold_{fold}",
                refiner,
                preprocessed,
                context.plans_manager,
                context.configuration_manager,
                context.dataset_json,
                settings=settings,
                device=device,
                validation_folders=sources,
                overwrite=overwrite,
                log=log,
                tag=tag,
            )
        )
    return done
