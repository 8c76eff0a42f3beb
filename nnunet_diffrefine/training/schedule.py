"""Learning-rate schedule and the short CPU schedules (environment variables).

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
==================================== ============================================ =========

e.g. ``DIFFREFINE_NUM_EPOCHS=2 DIFFREFINE_ITERS_PER_EPOCH=5 nnUNetv2_train 970 3d_fullres 0 -tr MedNeXtTrainer``.
The values in force are written to the training log.
"""

from __future__ import annotations

import math
import os

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler

from nnunet_diffrefine.errors import InputError

SCHEDULE_VARIABLES = {
    "num_epochs": "DIFFREFINE_NUM_EPOCHS",
    "num_iterations_per_epoch": "DIFFREFINE_ITERS_PER_EPOCH",
    "num_val_iterations_per_epoch": "DIFFREFINE_VAL_ITERS_PER_EPOCH",
    "warmup_epochs": "DIFFREFINE_WARMUP_EPOCHS",
}


def schedule_overrides(environ: dict[str, str] | None = None) -> dict[str, int]:
    """``{attribute: value}`` for every schedule variable that is set (positive integers; warm-up >= 0)."""
    environ = os.environ if environ is None else environ
    out: dict[str, int] = {}
    for attribute, variable in SCHEDULE_VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{variable}={raw!r} is not an integer") from None
        minimum = 0 if attribute == "warmup_epochs" else 1
        if value < minimum:
            raise InputError(f"{variable}={value} must be >= {minimum}")
        out[attribute] = value
    return out


class WarmupCosineLRScheduler(_LRScheduler):
    """Linear warm-up from ``initial_lr / (warmup_steps + 1)`` to ``initial_lr``, then cosine decay to 0.

    Steps are epochs, as nnU-Net calls ``scheduler.step(current_epoch)`` at the start of each epoch.
    """

    def __init__(
        self, optimizer: Optimizer, initial_lr: float, max_steps: int, warmup_steps: int = 5
    ) -> None:
        self.initial_lr = initial_lr
        self.max_steps = max(1, int(max_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.max_steps - 1))
        self.ctr = 0
        super().__init__(optimizer, -1)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
        return 0.5 * self.initial_lr * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def step(self, current_step: int | None = None) -> None:  # noqa: D102 - nnU-Net's calling convention
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = self.lr_at(current_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [lr for _ in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        return [self.lr_at(max(self.ctr - 1, 0)) for _ in self.optimizer.param_groups]
