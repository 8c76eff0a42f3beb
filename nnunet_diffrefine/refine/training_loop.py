"""The one training loop of every refiner: AdamW, warm-up + cosine learning rate, gradient clipping,
validation Dice every epoch, early stopping, the best weights kept, and an exact resume.

Ke et al. (Table 2) trains its diffusion models with AdamW, a linear warm-up from 1e-6 to the peak
then a cosine back to 1e-6 (per epoch), clipping at norm 1.0, validation every epoch and the
checkpoint with the best mean validation Dice kept; training stops when that has not improved for
``patience`` epochs. Every value comes from the refiner's settings (:mod:`.settings`).

After every epoch ``refiner_latest.pth`` holds the weights, the optimizer, the history, the best
weights and choices, and the random states (numpy's patch sampler, torch's noise): an interrupted
run resumes from it and ends bit for bit where an uninterrupted one does (on the CPU). A checkpoint
written with other settings is refused, except for a longer ``max_epochs`` or ``patience``
(continuing a finished training, as nnU-Net's ``--c`` does).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import atomic_output_file, write_json
from nnunet_diffrefine.utils.lr_schedule import warmup_cosine_lr

LATEST_FILE = "refiner_latest.pth"
HISTORY_FILE = "training_history.json"
EXTENDABLE = ("max_epochs", "patience")


def _fresh_state(seed: int) -> dict:
    return {
        "epoch": -1,
        "stale": 0,
        "history": {
            "epochs": [],
            "best_epoch": -1,
            "best_dice": -1.0,
            "prior_dice": None,
            "best_choices": {},
        },
        "best_state": None,
        "numpy_rng": np.random.default_rng(seed).bit_generator.state,
        "torch_rng": torch.Generator().manual_seed(seed + 1).get_state(),
        "cuda_rng": None,
    }


def _check_resumable(saved: dict, current: dict, where: Path) -> None:
    differs = sorted(
        k for k in set(saved) | set(current) if k not in EXTENDABLE and saved.get(k) != current.get(k)
    )
    if differs:
        changes = ", ".join(f"{k}: {saved.get(k)} -> {current.get(k)}" for k in differs)
        raise InputError(
            f"{where} was written with other settings ({changes}); pass --overwrite to start again"
        )


def _restore_rng(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return rng


def _save_latest(path: Path, net, optimizer, state: dict, rng: np.random.Generator, settings: dict) -> None:
    state = dict(
        state,
        net=net.state_dict(),
        optimizer=optimizer.state_dict(),
        numpy_rng=rng.bit_generator.state,
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        settings=settings,
    )
    with atomic_output_file(path) as tmp:
        torch.save(state, tmp)


def _train_epoch(refiner, net, optimizer, train, rng, settings) -> dict[str, float]:
    net.train()
    totals: dict[str, float] = {}
    for _ in range(settings.iterations_per_epoch):
        losses = refiner.training_losses(train, rng)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
        optimizer.step()
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach()) / settings.iterations_per_epoch
    return totals


def _epoch_line(name: str, entry: dict, improved: bool) -> str:
    losses = ", ".join(f"{k} {v:.4f}" for k, v in entry["losses"].items() if k != "loss")
    chosen = "".join(f", {k} {v}" for k, v in entry["choices"].items())
    chosen += "".join(f", {k} {v:.4f}" for k, v in entry.get("diagnostics", {}).items())
    return (
        f"{name} epoch {entry['epoch']}: lr {entry['lr']:.3g}, loss {entry['losses']['loss']:.4f} ({losses}), "
        f"validation Dice {entry['val_dice']:.4f} (prior {entry['prior_dice']:.4f}){chosen}, "
        f"{entry['seconds']:.1f} s{' *' if improved else ''}"
    )


def fit_refiner(refiner, train: list, val: list, folder: Path, log=print) -> dict:
    """Train ``refiner`` (its :attr:`network`, on :meth:`training_losses`) and return the history;
    the refiner ends with the best epoch's weights and choices (see the module docstring)."""
    net, s = refiner.network, refiner.settings
    if net is None:
        return _fresh_state(s.seed)["history"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    latest, state = folder / LATEST_FILE, _fresh_state(s.seed)
    if latest.is_file():
        state = torch.load(latest, map_location=refiner.device, weights_only=False)
        _check_resumable(state["settings"], s.to_dict(), latest)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        log(
            f"{refiner.name}: resuming at epoch {state['epoch'] + 1} (best validation Dice {state['history']['best_dice']:.4f})"
        )
    else:
        log(
            f"{refiner.name}: training on {len(train)} cases, early stopping on {len(val)}; settings: {s.summary()}"
        )
    rng, history = _restore_rng(state), state["history"]
    for epoch in range(state["epoch"] + 1, s.max_epochs):
        if state["stale"] >= s.patience:
            break
        lr = warmup_cosine_lr(
            epoch, s.learning_rate, s.max_epochs, s.warmup_epochs, s.min_learning_rate, s.min_learning_rate
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        totals = _train_epoch(refiner, net, optimizer, train, rng, s)
        net.eval()
        result = refiner.validate(val)
        improved = result.dice > history["best_dice"]
        if improved:
            history.update(best_dice=result.dice, best_epoch=epoch, best_choices=dict(result.choices))
            history["best_diagnostics"] = dict(result.diagnostics)
            state["best_state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        state["stale"] = 0 if improved else state["stale"] + 1
        history["prior_dice"] = result.prior_dice
        entry = {
            "epoch": epoch,
            "lr": lr,
            "losses": {k: round(v, 5) for k, v in totals.items()},
            "val_dice": round(result.dice, 5),
            "prior_dice": round(result.prior_dice, 5),
            "choices": dict(result.choices),
            "diagnostics": {k: round(float(v), 5) for k, v in result.diagnostics.items()},
            "seconds": round(time.perf_counter() - started, 2),
        }
        history["epochs"].append(entry)
        state["epoch"] = epoch
        _save_latest(latest, net, optimizer, state, rng, s.to_dict())
        log(_epoch_line(refiner.name, entry, improved))
    if state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
        refiner.apply_choices(history["best_choices"])
    net.eval()
    write_json(json.loads(json.dumps(history)), folder / HISTORY_FILE)
    return history
