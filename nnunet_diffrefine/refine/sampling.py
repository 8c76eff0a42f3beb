"""Noise schedules and the reverse-diffusion loops shared by the DDPM and MedSegDiff refiners.

The schedule (betas) always comes from MONAI's ``DDPMScheduler`` (``"cosine"`` or ``"linear_beta"``),
so training (``add_noise``) and sampling use the same ``alpha_bar_t``. The reverse loops use diffusers'
``DPMSolverMultistepScheduler`` built on those betas (``trained_betas``):

- :func:`dpm_solver_sample`: second-order multistep DPM-Solver++ (2M, Lu et al. 2022) from pure noise,
  diffusers' ``"linspace"`` timesteps (``T - 1`` down to ``T / steps``, then to ``sigma = 0``).
- :func:`ddim_sample`: deterministic DDIM (eta = 0) from an intermediate step ``t'`` down to 0. It is
  the same scheduler with ``solver_order=1``: first-order DPM-Solver++ is exactly DDIM
  (``x_s = sqrt(a_s) x0^ + sqrt(1 - a_s) eps^``), and unlike MONAI's or diffusers' ``DDIMScheduler`` (whose
  step assumes a fixed stride of ``T // steps`` from ``T - 1``) it accepts custom timesteps
  ``round(linspace(t', 0, steps + 1))[:-1]``.

Both loops end with a step to ``sigma = 0``, so the returned sample is the last ``x0`` estimate.
``model(x, t)`` gets ``x`` ``(B, C, ...)`` and ``t`` a long tensor ``(B,)`` and returns the clean sample
(``prediction_type="sample"``) or the noise (``"epsilon"``), shaped like ``x``. ``clip=True`` clips every
``x0`` estimate to [-1, 1] (diffusers' thresholding with ``sample_max_value=1``, i.e. static clipping).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_scheduler(num_train_timesteps: int, schedule: str, prediction_type: str):
    """MONAI ``DDPMScheduler`` (no clipping) that defines the betas and ``add_noise`` for training."""
    from monai.networks.schedulers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=int(num_train_timesteps),
        schedule=schedule,
        clip_sample=False,
        prediction_type=prediction_type,
    )


def solver(betas: torch.Tensor, prediction_type: str, order: int, clip: bool = False):
    """diffusers ``DPMSolverMultistepScheduler`` (DPM-Solver++, order 1 = DDIM or 2) on MONAI's ``betas``."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=len(betas),
        trained_betas=betas.detach().cpu().double().numpy(),
        solver_order=order,
        prediction_type=prediction_type,
        algorithm_type="dpmsolver++",
        thresholding=clip,
        dynamic_thresholding_ratio=1.0,
        sample_max_value=1.0,
        lower_order_final=True,
        final_sigmas_type="zero",
    )


def _set_timesteps(scheduler, **kwargs) -> None:
    with warnings.catch_warnings():  # diffusers calls np.array(tensor, copy=False) (numpy 2 deprecation)
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        scheduler.set_timesteps(**kwargs)


def _run(scheduler, model: ModelFn, x: torch.Tensor, grad_last: bool = False) -> torch.Tensor:
    """The reverse loop; with ``grad_last`` the last model call (and the step to ``x0``) keeps its graph."""
    last = len(scheduler.timesteps) - 1
    for i, t in enumerate(scheduler.timesteps):
        timestep = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        with torch.set_grad_enabled(grad_last and i == last):
            x = scheduler.step(model(x, timestep), int(t), x).prev_sample
    return x


def dpm_solver_sample(
    model: ModelFn,
    noise: torch.Tensor,
    betas: torch.Tensor,
    steps: int,
    prediction_type: str,
    clip: bool = False,
) -> torch.Tensor:
    """Second-order DPM-Solver++ from ``x_T = noise`` in ``steps`` model calls; returns ``x0`` like ``noise``."""
    scheduler = solver(betas, prediction_type, order=2, clip=clip)
    _set_timesteps(scheduler, num_inference_steps=int(steps), device=noise.device)
    return _run(scheduler, model, noise)


def ddim_timesteps(start_timestep: int, steps: int) -> list[int]:
    """The ``steps`` DDIM timesteps from ``start_timestep`` down to (not including) 0, evenly spaced."""
    start = int(start_timestep)
    points = np.round(np.linspace(start, 0, int(steps) + 1)[:-1]).astype(int)
    return sorted({int(t) for t in points if t > 0}, reverse=True) or [max(start, 1)]


def ddim_sample(
    model: ModelFn,
    x_start: torch.Tensor,
    betas: torch.Tensor,
    start_timestep: int,
    steps: int,
    prediction_type: str,
    clip: bool = False,
    grad_last: bool = False,
) -> torch.Tensor:
    """Deterministic DDIM from ``x_start`` = ``x_{t'}`` (``t' = start_timestep``) in ``steps`` model calls.

    ``grad_last``: gradients flow through the last model call into the returned ``x0`` (the earlier
    steps run without a graph), so a loss on the sample trains the model the way it is sampled."""
    scheduler = solver(betas, prediction_type, order=1, clip=clip)
    _set_timesteps(scheduler, timesteps=ddim_timesteps(start_timestep, steps), device=x_start.device)
    return _run(scheduler, model, x_start, grad_last)
