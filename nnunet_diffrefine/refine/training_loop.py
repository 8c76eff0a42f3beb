"""The epoch loop of the diffusion refiners: AdamW, warm-up + cosine learning rate, gradient clipping,
validation Dice every epoch, early stopping, best weights kept, resume from ``refiner_latest.pth``.

Seed 000 (Table 2) trains its diffusion models with AdamW, a linear warm-up (10 epochs) then a cosine
decay, clipping at norm 1.0, validation every epoch and the checkpoint with the best mean validation
Dice kept; training stops when it has not improved for ``patience`` epochs. The warm-up is capped at
``max_epochs - 1`` (:class:`~nnunet_diffrefine.training.schedule.WarmupCosineLRScheduler`, stepped
per epoch, decaying to 0 instead of the paper's 1e-6).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nnunet_diffrefine.refine.base import RefinerSettings, TrainingCase
from nnunet_diffrefine.utils.io import atomic_output_file, write_json

LATEST_FILE = "refiner_latest.pth"


def mean_dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean Dice over the channels of boolean masks ``(C, ...)`` (both empty: 1)."""
    scores = []
    for c in range(pred.shape[0]):
        p, t = pred[c], target[c]
        denom = p.sum() + t.sum()
        scores.append(1.0 if denom == 0 else 2.0 * np.logical_and(p, t).sum() / denom)
    return float(np.mean(scores))


def masks(probabilities: np.ndarray, regions: bool) -> np.ndarray:
    """Binary masks ``(C', ...)``: regions thresholded at 0.5, or argmax one-hot of the foreground classes."""
    if regions:
        return probabilities > 0.5
    winner = probabilities.argmax(0)
    return np.stack([winner == j for j in range(1, probabilities.shape[0])])


def validation_dice(
    refine: Callable[[np.ndarray, np.ndarray, int], np.ndarray], cases: list[TrainingCase], regions: bool
) -> tuple[float, float]:
    """(mean Dice of ``refine(prior, image, seed)``, mean Dice of the priors) over ``cases``."""
    refined, prior = [], []
    for i, case in enumerate(cases):
        target = masks(case.target, regions)
        refined.append(mean_dice(masks(refine(case.prior, case.image, i), regions), target))
        prior.append(mean_dice(masks(case.prior, regions), target))
    return float(np.mean(refined)), float(np.mean(prior))


def train_with_early_stopping(
    label: str,
    net: torch.nn.Module,
    batch_losses: Callable[[np.random.Generator], dict[str, torch.Tensor]],
    validate: Callable[[], tuple],
    folder: Path,
    settings: RefinerSettings,
    warmup_epochs: int,
    log=print,
) -> dict:
    """Train ``net`` on ``batch_losses(rng)["loss"]`` and return the history; ``net`` ends with the best weights.

    ``batch_losses`` draws one batch with ``rng`` and returns its losses (``"loss"`` is optimised, the
    others are logged); ``validate()`` returns (refined, prior) mean validation Dice, optionally with a
    dict of values chosen on the validation cases (logged per epoch; the best epoch's are
    ``history["best_choices"]``).
    """
    from nnunet_diffrefine.training.schedule import WarmupCosineLRScheduler

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    lr_schedule = WarmupCosineLRScheduler(
        optimizer, settings.learning_rate, settings.max_epochs, warmup_epochs
    )
    history: dict = {"epochs": [], "best_epoch": -1, "best_dice": -1.0, "prior_dice": None}
    start_epoch, best_state, stale = 0, None, 0
    latest = folder / LATEST_FILE
    if latest.is_file():  # resume an interrupted training
        checkpoint = torch.load(latest, map_location=next(net.parameters()).device, weights_only=False)
        net.load_state_dict(checkpoint["net"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        history, start_epoch, stale = checkpoint["history"], checkpoint["epoch"] + 1, checkpoint["stale"]
        best_state = checkpoint["best_state"]
        rng = np.random.default_rng([settings.seed, start_epoch])
        torch.manual_seed(settings.seed + start_epoch)
        log(f"{label}: resuming at epoch {start_epoch} (best validation Dice {history['best_dice']:.4f})")
    for epoch in range(start_epoch, settings.max_epochs):
        if stale >= settings.patience:
            break
        lr_schedule.step(epoch)
        net.train()
        started = time.perf_counter()
        totals: dict[str, float] = {}
        for _ in range(settings.iterations_per_epoch):
            losses = batch_losses(rng)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            optimizer.step()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / settings.iterations_per_epoch
        net.eval()
        dice, prior_dice, *rest = validate()
        choices = rest[0] if rest else {}
        history["prior_dice"] = prior_dice
        improved = dice > history["best_dice"]
        if improved:
            history["best_dice"], history["best_epoch"], stale = dice, epoch, 0
            history["best_choices"] = choices
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        history["epochs"].append(
            {
                "epoch": epoch,
                "lr": optimizer.param_groups[0]["lr"],
                **{k: round(v, 5) for k, v in totals.items()},
                "val_dice": round(dice, 5),
                "prior_dice": round(prior_dice, 5),
                **choices,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        parts = ", ".join(f"{k} {v:.4f}" for k, v in totals.items() if k != "loss")
        log(
            f"{label} epoch {epoch}: loss {totals['loss']:.4f} ({parts}), validation Dice {dice:.4f} "
            f"(prior {prior_dice:.4f}){''.join(f', {k} {v}' for k, v in choices.items())}{' *' if improved else ''}"
        )
        with atomic_output_file(latest) as tmp:
            torch.save(
                {
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "epoch": epoch,
                    "stale": stale,
                    "best_state": best_state,
                },
                tmp,
            )
    if best_state is not None:
        net.load_state_dict(best_state)
    write_json(json.loads(json.dumps(history)), folder / "training_history.json")
    return history
