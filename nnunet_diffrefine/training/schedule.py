"""The short CPU schedules of the nnU-Net trainers (environment variables) and their learning-rate schedule.

Both papers train with AdamW (lr 1e-4, weight decay 1e-5), a linear warm-up and a cosine decay
(CoMNeT: 5 warm-up epochs) and clip gradients at norm 1.0.

Short schedules use the same trainer classes: set any of

==================================== ============================================ =========
variable                             meaning                                      nnU-Net
==================================== ============================================ =========
``DIFFREFINE_NUM_EPOCHS``            number of epochs                             1000
``DIFFREFINE_ITERS_PER_EPOCH``       training iterations per epoch                250
``DIFFREFINE_VAL_ITERS_PER_EPOCH``   validation iterations per epoch              50
``DIFFREFINE_WARMUP_EPOCHS``         linear warm-up epochs (capped at epochs - 1) 5
``DIFFREFINE_LR``                    peak learning rate                           1e-2 (SGD)
``DIFFREFINE_SAVE_EVERY``            epochs between checkpoint_latest.pth         50
==================================== ============================================ =========

(our trainers' peak learning rate is the papers' 1e-4 with AdamW; a short CPU schedule needs a larger
one, see ``nnunet_diffrefine.training.cpu_schedule``).

e.g. ``DIFFREFINE_NUM_EPOCHS=2 DIFFREFINE_ITERS_PER_EPOCH=5 nnUNetv2_train 970 3d_fullres 0 -tr MedNeXtTrainer``.
The values in force are written to the training log.
"""

from __future__ import annotations

import os

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.lr_schedule import WarmupCosineLRScheduler

__all__ = ["SCHEDULE_VARIABLES", "WarmupCosineLRScheduler", "schedule_overrides"]

SCHEDULE_VARIABLES = {
    "num_epochs": "DIFFREFINE_NUM_EPOCHS",
    "num_iterations_per_epoch": "DIFFREFINE_ITERS_PER_EPOCH",
    "num_val_iterations_per_epoch": "DIFFREFINE_VAL_ITERS_PER_EPOCH",
    "warmup_epochs": "DIFFREFINE_WARMUP_EPOCHS",
    "initial_lr": "DIFFREFINE_LR",
    "save_every": "DIFFREFINE_SAVE_EVERY",
}


def schedule_overrides(environ: dict[str, str] | None = None) -> dict[str, int | float]:
    """``{attribute: value}`` for every schedule variable that is set (positive integers, warm-up >= 0,
    a positive finite learning rate)."""
    environ = os.environ if environ is None else environ
    out: dict[str, int | float] = {}
    for attribute, variable in SCHEDULE_VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        kind = float if attribute == "initial_lr" else int
        try:
            value = kind(raw)
        except ValueError:
            raise InputError(
                f"{variable}={raw!r} is not {'a number' if kind is float else 'an integer'}"
            ) from None
        minimum = 0 if attribute == "warmup_epochs" else 1
        if kind is float and not 0 < value < float("inf"):
            raise InputError(f"{variable}={raw} must be a positive number")
        if kind is int and value < minimum:
            raise InputError(f"{variable}={value} must be >= {minimum}")
        out[attribute] = value
    return out
