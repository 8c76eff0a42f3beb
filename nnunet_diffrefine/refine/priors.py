"""How priors were predicted, and whether a refiner learned on priors predicted the same way.

A refiner learns the errors of the priors it is trained on: nnU-Net's final validation of one fold
(out-of-fold, with test-time mirroring where the trainer allows it). Priors predicted otherwise
(without mirroring, or averaged over several folds, which makes them smoother and better calibrated)
have other errors. ``refine`` therefore compares the two and warns, naming each difference, and
records both in ``refine_args.json``.

``nnUNetv2_predict`` records neither setting in its output folder, so for its folders ``refine``
assumes its defaults (mirroring, and the folds given to ``refine -f``) unless told otherwise
(``--prior-disable-tta``, ``--prior-folds``); this project's own predictor writes
``prior_prediction.json`` next to the probabilities.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import write_json

PRIOR_FILE = "prior_prediction.json"


@dataclass(frozen=True)
class PriorPrediction:
    """How a set of priors was predicted: test-time ``mirroring`` and the number of folds averaged
    into each prior (1: a single fold, as the out-of-fold priors); None where unknown."""

    mirroring: bool | None
    num_folds: int | None
    source: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def differences(self, other: PriorPrediction) -> list[str]:
        """What differs between these (the refiner's training priors) and ``other`` (the priors refined)."""
        out = []
        for key, label in (("mirroring", "test-time mirroring"), ("num_folds", "folds averaged per prior")):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine is not None and theirs is not None and mine != theirs:
                out.append(f"{label} {mine} in training, {theirs} here")
        return out


def out_of_fold_prediction(mirroring_axes) -> PriorPrediction:
    """The priors nnU-Net's final validation writes (``--npz``): one fold, mirrored along ``mirroring_axes``
    (the trainer's ``inference_allowed_mirroring_axes``; None or empty: no mirroring)."""
    return PriorPrediction(bool(mirroring_axes), 1, "nnU-Net final validation (out-of-fold)")


def out_of_fold_prediction_of(fold_folder: str | os.PathLike) -> PriorPrediction:
    """:func:`out_of_fold_prediction` for a trained fold, from its ``checkpoint_final.pth``."""
    import torch

    checkpoint = Path(fold_folder) / "checkpoint_final.pth"
    try:
        axes = torch.load(checkpoint, map_location="cpu", weights_only=False).get(
            "inference_allowed_mirroring_axes"
        )
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(f"{checkpoint}: unreadable checkpoint ({e})") from None
    return out_of_fold_prediction(axes)


def write_prior_prediction(folder: str | os.PathLike, prediction: PriorPrediction) -> None:
    """Record how the priors in ``folder`` were predicted."""
    write_json(prediction.to_json(), Path(folder) / PRIOR_FILE)


def read_prior_prediction(
    folder: str | os.PathLike,
    assumed_folds: int,
    mirroring: bool | None = None,
    num_folds: int | None = None,
) -> PriorPrediction:
    """How the priors in ``folder`` were predicted: as recorded in ``prior_prediction.json``, else
    nnUNetv2_predict's defaults (mirroring, ``assumed_folds`` folds); ``mirroring`` and ``num_folds``,
    when given, state what the record cannot."""
    path = Path(folder) / PRIOR_FILE
    if path.is_file():
        try:
            base = PriorPrediction(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise InputError(f"{path}: not a prior-prediction record ({e})") from None
    else:
        base = PriorPrediction(
            True,
            assumed_folds,
            f"assumed: nnUNetv2_predict defaults (mirroring, the {assumed_folds} fold(s) of -f)",
        )
    if mirroring is None and num_folds is None:
        return base
    return PriorPrediction(
        base.mirroring if mirroring is None else mirroring,
        base.num_folds if num_folds is None else num_folds,
        "stated on the command line",
    )
