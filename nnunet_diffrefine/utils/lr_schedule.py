"""Linear warm-up then cosine decay of the learning rate, stepped once per epoch.

Both papers train with a warm-up and a cosine decay (CoMNeT: 5 warm-up epochs; Ke et al. Table 2:
10 warm-up epochs from 1e-6 to the peak, then a cosine to 1e-6). Written here because neither
torch nor nnU-Net has this schedule with nnU-Net's calling convention (``scheduler.step(epoch)``).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


def warmup_cosine_lr(
    step: int,
    peak: float,
    max_steps: int,
    warmup_steps: int,
    min_lr: float = 0.0,
    start_lr: float | None = None,
) -> float:
    """The learning rate of epoch ``step`` (0-based) of ``max_steps``.

    Warm-up: linear from ``start_lr`` (default ``peak / (warmup_steps + 1)``) at step 0 towards ``peak``,
    reached at ``warmup_steps`` (capped at ``max_steps - 1``); then a cosine from ``peak`` to ``min_lr``.
    """
    max_steps = max(1, int(max_steps))
    warmup = max(0, min(int(warmup_steps), max_steps - 1))
    if step < warmup:
        start = peak / (warmup + 1) if start_lr is None else float(start_lr)
        return start + (peak - start) * step / warmup
    progress = min((step - warmup) / max(1, max_steps - warmup), 1.0)
    return min_lr + 0.5 * (peak - min_lr) * (1.0 + math.cos(math.pi * progress))


class WarmupCosineLRScheduler(_LRScheduler):
    """:func:`warmup_cosine_lr` as a torch scheduler; ``step(epoch)`` sets the rate of that epoch."""

    def __init__(
        self,
        optimizer: Optimizer,
        initial_lr: float,
        max_steps: int,
        warmup_steps: int = 5,
        min_lr: float = 0.0,
        start_lr: float | None = None,
    ) -> None:
        self.initial_lr = initial_lr
        self.max_steps = max(1, int(max_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.max_steps - 1))
        self.min_lr, self.start_lr = min_lr, start_lr
        self.ctr = 0
        super().__init__(optimizer, -1)

    def lr_at(self, step: int) -> float:
        return warmup_cosine_lr(
            step, self.initial_lr, self.max_steps, self.warmup_steps, self.min_lr, self.start_lr
        )

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
