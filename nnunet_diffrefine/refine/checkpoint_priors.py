"""More real priors than cases: the out-of-fold cases predicted again by other checkpoints of their fold.

nnU-Net keeps ``checkpoint_best.pth`` (best EMA pseudo-Dice) next to ``checkpoint_final.pth`` in each
fold. Both never trained on the fold's validation cases, so both give honest priors of them, with
different errors. With the refiner setting ``checkpoint_priors`` (e.g. ``checkpoint_best.pth``),
``train-refiner`` predicts the fold's out-of-fold cases with each named checkpoint the way nnU-Net's
final validation does (the preprocessed case, sliding window with the trainer's mirroring, exported to
the original grid with probabilities) into ``fold_N/validation_<checkpoint>/``, once. Those maps become
:attr:`~nnunet_diffrefine.refine.base.TrainingCase.extra_priors` of their case: a training crop draws
its prior among the case's priors, while early stopping, the inner cross-validation and the gate use
the final checkpoint's prior only (the one ``refine`` will see), and the splits stay by case, so no
case's priors are ever on both sides of a split.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import TrainingCase
from nnunet_diffrefine.refine.spaces import original_to_preprocessed
from nnunet_diffrefine.utils.io import atomic_output_dir
from nnunet_diffrefine.workspace.predictor import fold_predictor

FINAL_CHECKPOINT = "checkpoint_final.pth"


def checkpoint_names(value: str) -> list[str]:
    """The checkpoint files a ``checkpoint_priors`` setting names (``none``: none)."""
    if value.strip().lower() in ("", "none"):
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if "/" in name or os.sep in name or not name.endswith(".pth"):
            raise InputError(
                f"checkpoint_priors: {name!r} is not a checkpoint file name of a fold folder (e.g. checkpoint_best.pth)"
            )
        if name == FINAL_CHECKPOINT:
            raise InputError(
                f"checkpoint_priors: {FINAL_CHECKPOINT} already gives the out-of-fold priors (fold_N/validation)"
            )
    return names


def saved_epoch(checkpoint: str | os.PathLike) -> int | None:
    """The epoch nnU-Net saved ``checkpoint`` at (its ``current_epoch``; None where unreadable)."""
    import torch

    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False).get("current_epoch")
    except (OSError, RuntimeError, EOFError, AttributeError):
        return None


def checkpoint_prior_folder(fold_folder: str | os.PathLike, checkpoint: str) -> Path:
    """``fold_N/validation_<checkpoint without .pth>``."""
    return Path(fold_folder) / f"validation_{checkpoint[: -len('.pth')]}"


def predict_checkpoint_priors(
    fold_folder: str | os.PathLike,
    checkpoint: str,
    case_ids: list[str],
    preprocessed_folder: str | os.PathLike,
    device: str = "cpu",
) -> Path:
    """Predict ``case_ids`` (preprocessed in ``preprocessed_folder``) with ``fold_folder/checkpoint`` as
    nnU-Net's final validation predicts them; ``CASE.npz`` probabilities ``(C, Z, Y, X)`` on the original
    grid, written whole into :func:`checkpoint_prior_folder` (kept when it already holds every case)."""
    import torch
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    fold_folder = Path(fold_folder)
    out = checkpoint_prior_folder(fold_folder, checkpoint)
    if out.is_dir() and all((out / f"{c}.npz").is_file() for c in case_ids):
        return out
    if not (fold_folder / checkpoint).is_file():
        raise InputError(f"{fold_folder / checkpoint} does not exist")
    fold = fold_folder.name[len("fold_") :]
    predictor = fold_predictor(fold_folder.parent, int(fold) if fold.isdigit() else fold, checkpoint, device)
    dataset = infer_dataset_class(str(preprocessed_folder))(str(preprocessed_folder), list(case_ids))
    with atomic_output_dir(out, overwrite=True) as tmp:
        for case in case_ids:
            data, _, _, properties = dataset.load_case(case)
            logits = predictor.predict_logits_from_preprocessed_data(
                torch.from_numpy(np.asarray(data[:], dtype=np.float32))
            ).cpu()
            export_prediction_from_logits(
                logits,
                properties,
                predictor.configuration_manager,
                predictor.plans_manager,
                predictor.dataset_json,
                str(tmp / case),
                True,
            )
    return out


def add_checkpoint_priors(
    cases: list[TrainingCase],
    sources: list[Path],
    checkpoints: list[str],
    preprocessed_folder: str | os.PathLike,
    plans_manager,
    configuration_manager,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[list[TrainingCase], list[str]]:
    """``cases`` (read from the out-of-fold folders ``sources``, each ``fold_N/validation``) with the
        priors of ``checkpoints`` of the fold that validated them as ``extra_priors`` (in the preprocessed
        space), and the folders they came from. A fold without a checkpoint, or whose checkpoint was saved at
    the final checkpoint's epoch (nnU-Net's ``checkpoint_best.pth`` when the last epoch was the best: the
    same weights), adds nothing from it (said)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    if not checkpoints:
        return cases, []
    extras: dict[str, list] = {c.case_id: [] for c in cases}
    by_id = {c.case_id: c for c in cases}
    used = []
    for source in sources:
        ids = sorted(
            p.name[: -len(".npz")] for p in Path(source).glob("*.npz") if p.name[: -len(".npz")] in by_id
        )
        fold_folder = Path(source).parent
        for checkpoint in checkpoints:
            if not (fold_folder / checkpoint).is_file():
                log(f"refiner stage: {fold_folder / checkpoint} does not exist: no priors from it")
                continue
            epoch = saved_epoch(fold_folder / checkpoint)
            if epoch is not None and epoch == saved_epoch(fold_folder / FINAL_CHECKPOINT):
                log(
                    f"refiner stage: {fold_folder / checkpoint} was saved at the final checkpoint's epoch "
                    f"({epoch}): the same weights, no new priors from it"
                )
                continue
            folder = predict_checkpoint_priors(fold_folder, checkpoint, ids, preprocessed_folder, device)
            dataset = infer_dataset_class(str(preprocessed_folder))(str(preprocessed_folder), ids)
            for case in ids:
                properties = dataset.load_case(case)[3]
                probabilities = np.load(folder / f"{case}.npz")["probabilities"].astype(np.float32)
                extras[case].append(
                    original_to_preprocessed(
                        probabilities,
                        properties,
                        plans_manager,
                        configuration_manager,
                        by_id[case].image.shape[1:],
                    )
                )
            used.append(str(folder))
            log(f"refiner stage: {len(ids)} more training priors from {checkpoint} ({folder})")
    out = [dataclasses.replace(c, extra_priors=(*c.extra_priors, *extras[c.case_id])) for c in cases]
    return out, used
