"""The base trainers' learning-rate schedule, and their short CPU schedules (environment variables).

Both papers train with AdamW (lr 1e-4, weight decay 1e-5), a linear warm-up and a cosine decay
(CoMNeT: 5 warm-up epochs) and clip gradients at norm 1.0. Short schedules use the same trainer classes
through the ``DIFFREFINE_*`` schedule variables, read by :mod:`nnunet_diffrefine.environment` (the table
of every variable is there), e.g.
``DIFFREFINE_NUM_EPOCHS=2 DIFFREFINE_ITERS_PER_EPOCH=5 nnUNetv2_train 970 3d_fullres 0 -tr MedNeXtTrainer``.
The values in force are written to the training log.
"""

from __future__ import annotations

from nnunet_diffrefine.environment import TRAINER_SCHEDULE_VARIABLES as SCHEDULE_VARIABLES
from nnunet_diffrefine.environment import TrainerSchedule, trainer_schedule
from nnunet_diffrefine.utils.lr_schedule import WarmupCosineLRScheduler

__all__ = ["SCHEDULE_VARIABLES", "TrainerSchedule", "WarmupCosineLRScheduler", "schedule_overrides"]


def schedule_overrides(environ: dict[str, str] | None = None) -> dict[str, int | float]:
    """``{trainer attribute: value}`` for every schedule variable that is set (validated)."""
    return trainer_schedule(environ).overrides()
