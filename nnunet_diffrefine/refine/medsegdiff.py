"""Seed 000's MedSegDiff refiner (§3.4) on 2D axial slices, conditioned on the coarse prior, and its
unconditional ("scratch") baseline.

Diffusion on the segmentation channels only: ``s0 = 2 y - 1`` (``C`` channels), linear schedule,
``T = 1000``; the denoiser predicts the noise. A highway U-Net maps the image slice (and the prior slice
when conditioned) to calibration logits ``c``; its multi-scale features enter the denoiser through an
FF-Parser at each scale (:mod:`nnunet_diffrefine.networks.medsegdiff`). Loss (eq. 12):
``||eps - eps^||^2 + 10 * DiceCE(c, y)``. Sampling: second-order DPM-Solver++ from pure noise
(:mod:`nnunet_diffrefine.refine.sampling`), fused with the calibration map.

The paper leaves these open; our choices:

- **Slices**: axial = the first spatial axis ``Z`` of nnU-Net's ``(C, Z, Y, X)`` arrays. The slice size
  is the last two entries of the patch size (the paper's 128 x 128); nothing is resampled (the
  preprocessed spacing is kept): training uses random in-plane crops of that size (zero-padded when
  the slice is smaller, two thirds of the slices and crops on tumor or prior, random flips), and
  inference tiles every slice with MONAI's 2D sliding window at that size (25 % overlap, Gaussian
  blending), ``slice_batch`` (32) windows a call; the slices are stacked back into the volume.
- **Inputs**: the paper's ``x_t = [I; s_t; C]`` is split between the branches: ``s_t`` goes to the
  denoiser, ``[I; 2p - 1]`` (``[I]`` for scratch) to the highway. The highway's features are
  computed once per window and reused by every sampling step.
- **Batch**: each of the ``batch_size`` cases drawn per iteration gives ``slices_per_case`` (16)
  slices, so the refiner stage's batch of 2 is the paper's 32 slices.
- **DiceCE**: soft Dice (eq. 2, batch Dice over the slices) + BCE per region channel (softmax Dice over
  the foreground + CE for label-based outputs), see :mod:`nnunet_diffrefine.refine.diffusion_losses`.
- **Sampling**: ``inference_steps`` = 10 DPM-Solver++(2M) steps, every ``x0`` estimate clipped to
  [-1, 1] (MedSegDiff's ``clip_denoised``). The diffusion mask ``p_d = (s0 + 1) / 2`` (clipped to [0, 1];
  renormalised over the classes for softmax outputs, uniform where all are 0).
- **Fusion**: ``p = w p_d + (1 - w) p_c`` with the calibration map ``p_c = sigmoid(c)`` (softmax for
  labels). ``fusion_weight`` = "auto" learns ``w`` on the validation cases: after every epoch the
  weight of {0, 0.25, 0.5, 0.75, 1} with the best mean validation Dice is kept with that epoch (and
  saved with the weights; 0.5, the mean of the two, before training); a number fixes ``w``. MedSegDiff's
  reference code adds ``0.25 p_d`` to ``c``. A fixed mean failed in our short CPU trainings: the
  highway learns the repair long before the noise predictor learns to use its features at high noise
  levels (after 900 iterations on the tests' phantoms, held-out Dice 0.97 for ``p_c`` alone, 0.05 for
  ``p_d`` alone, 0.41 for their mean, 0.63 for the prior), and "auto" then picks ``w = 0``.
  ``num_samples`` > 1 averages the diffusion maps;
  :meth:`MedSegDiffRefiner.refine_with_uncertainty` also returns ``w`` times their per-voxel standard
  deviation (the standard deviation of the fused map, ``p_c`` being deterministic).
- **Cost** (``benchmarks/bench_refine_cost.py``, 2 CPU cores, a case on the BraTS 1 mm grid, 160 x 128
  slices from the Swin-UNETR patch, 10 steps): 67 s conditioned (the prior's region of interest,
  :mod:`nnunet_diffrefine.refine.roi`) and 300 s scratch (every slice), against 346 s for Swin-UNETR's
  own prediction (no mirroring). The 2D net has 0.36 M convolution parameters, plus the FF-Parser maps
  (0.12 M for 64 x 64 slices, 0.47 M for 128 x 128).
- **Optimisation** (:mod:`nnunet_diffrefine.refine.training_loop`): the caller's
  :class:`RefinerSettings`; warm-up (``warmup_epochs`` = 10) + cosine; :meth:`MedSegDiffRefiner.paper_settings`
  gives Table 2's (lr 4e-4, no weight decay, 300 epochs, patience 100, 128 x 128 slices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import Refiner, RefinerSettings, TrainingCase, register
from nnunet_diffrefine.refine.diffusion_losses import dice_ce, output_probabilities
from nnunet_diffrefine.refine.patches import sample_slices, sliding_window
from nnunet_diffrefine.refine.roi import ROI_DEFAULTS, check_roi_setting, refine_in_roi
from nnunet_diffrefine.refine.sampling import dpm_solver_sample, train_scheduler
from nnunet_diffrefine.refine.training_loop import masks, mean_dice, train_with_early_stopping

FUSION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_FUSION_WEIGHT = 0.5
FUSION_KEY = "fusion_weight"  # saved with the network weights


@register
class MedSegDiffRefiner(Refiner):
    """Conditioned MedSegDiff (see the module docstring).

    Settings and defaults: ``channels`` [16, 32, 64], ``num_train_timesteps`` 1000, ``schedule`` "linear_beta",
    ``inference_steps`` 10, ``num_samples`` 1, ``calibration_weight`` 10.0, ``fusion_weight`` "auto",
    ``slices_per_case`` 16, ``slice_batch`` 32, ``warmup_epochs`` 10, ``patch_size`` [64, 64, 64] (its
    last two entries are the slice size; ``fit`` sets it to the training patch), ``roi`` True,
    ``roi_threshold`` 0.05, ``roi_margin`` 16 (scratch: ``roi`` False; :mod:`nnunet_diffrefine.refine.roi`).
    """

    name = "medsegdiff"
    conditioned = True
    defaults: dict = {
        "channels": [16, 32, 64],
        "num_train_timesteps": 1000,
        "schedule": "linear_beta",
        "inference_steps": 10,
        "num_samples": 1,
        "calibration_weight": 10.0,
        "fusion_weight": "auto",
        "slices_per_case": 16,
        "slice_batch": 32,
        "warmup_epochs": 10,
        "patch_size": [64, 64, 64],
        **ROI_DEFAULTS,
    }

    def __init__(self, signature, device="cpu", **settings) -> None:
        super().__init__(signature, device, **{**self.defaults, **settings})
        check_roi_setting(self)
        self.regions = signature.regions
        self.scheduler = train_scheduler(
            int(self.settings["num_train_timesteps"]), self.settings["schedule"], "epsilon"
        )
        self.net = self._build_net()
        self.learned_fusion_weight = DEFAULT_FUSION_WEIGHT

    def _build_net(self):
        from nnunet_diffrefine.networks.medsegdiff import MedSegDiffNet

        size, multiple = self.slice_size, self.patch_multiple
        if any(s % multiple for s in size):
            raise InputError(
                f"MedSegDiff: the slice size {list(size)} must be a multiple of {multiple} on each axis"
            )
        c = self.signature.num_outputs
        cond_channels = self.signature.num_input_channels + (c if self.conditioned else 0)
        return MedSegDiffNet(cond_channels, c, size, [int(ch) for ch in self.settings["channels"]]).to(
            self.device
        )

    @property
    def patch_multiple(self) -> int:
        """Of the slice sides (the first patch axis, slices per window, is free)."""
        return 2 ** (len(self.settings["channels"]) - 1)

    @property
    def slice_size(self) -> tuple[int, int]:
        return tuple(int(p) for p in self.settings["patch_size"][-2:])

    @classmethod
    def paper_settings(cls) -> RefinerSettings:
        """Seed 000 Table 2's optimisation settings (batch 2 cases x 16 slices = 32 slices)."""
        return RefinerSettings(
            max_epochs=300,
            patience=100,
            learning_rate=4e-4,
            weight_decay=0.0,
            batch_size=2,
            patch_size=(1, 128, 128),
            grad_clip=1.0,
        )

    def state_dict(self) -> dict:
        return {**self.net.state_dict(), FUSION_KEY: torch.tensor(float(self.learned_fusion_weight))}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.learned_fusion_weight = float(state.pop(FUSION_KEY, DEFAULT_FUSION_WEIGHT))
        self.net.load_state_dict(state)

    def condition(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """The highway's input ``(B, I [+ C], H, W)``."""
        return torch.cat([image, 2 * prior - 1], 1) if self.conditioned else image

    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Eq. (12) on a batch of slices ``(N, ..., H, W)``."""
        s0 = 2 * target - 1
        noise = torch.randn_like(s0)
        t = torch.randint(0, int(self.settings["num_train_timesteps"]), (s0.shape[0],), device=self.device)
        eps, logits = self.net(self.scheduler.add_noise(s0, noise, t), t, self.condition(image, prior))
        l_noise = F.mse_loss(eps, noise)
        l_cal = dice_ce(logits, target, self.regions)
        return {
            "loss": l_noise + float(self.settings["calibration_weight"]) * l_cal,
            "noise": l_noise,
            "dice_ce": l_cal,
        }

    # --- inference -----------------------------------------------------------------------------------
    @property
    def fusion_weight(self) -> float:
        """The weight of the diffusion map in the fused output: the ``fusion_weight`` setting when it is a
        number, else the one selected on the validation cases (0.5 before any training)."""
        fixed = self.settings["fusion_weight"]
        return float(self.learned_fusion_weight if fixed == "auto" else fixed)

    @torch.no_grad()
    def _sample_window(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(N, 3C, H, W)``: the calibration map, and the mean and standard deviation of ``num_samples``
        diffusion maps."""
        window = window.to(self.device)
        n_in, c = self.signature.num_input_channels, self.signature.num_outputs
        logits, features = self.net.condition(self.condition(window[:, :n_in], window[:, n_in:]))

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net.denoise(x, t, features)

        samples = []
        for _ in range(int(self.settings["num_samples"])):
            noise = torch.randn((window.shape[0], c, *window.shape[2:]), generator=generator).to(self.device)
            steps = int(self.settings["inference_steps"])
            s0 = dpm_solver_sample(model, noise, self.scheduler.betas, steps, "epsilon", clip=True)
            diffusion = ((s0 + 1) / 2).clamp(0, 1)
            if not self.regions:
                diffusion = (diffusion + 1e-6) / (diffusion + 1e-6).sum(1, keepdim=True)  # all 0: uniform
            samples.append(diffusion)
        stacked = torch.stack(samples)
        calibration = output_probabilities(logits, self.regions)
        return torch.cat([calibration, stacked.mean(0), stacked.std(0, correction=0)], 1).cpu()

    def branches(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
        """``(p_c, p_d, std_d)``, each ``(C, Z, Y, X)``: the calibration map, the mean diffusion map over
        ``num_samples`` and its per-voxel standard deviation (on the region of interest of
        :mod:`nnunet_diffrefine.refine.roi` when ``roi`` is set: the prior, the prior and 0 outside)."""
        return refine_in_roi(
            lambda p, i: self._branches_volume(p, i, seed),
            prior,
            image,
            self.regions,
            self.settings,
            ("prior", "prior", "zero"),
        )

    def _branches_volume(self, prior: np.ndarray, image: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
        self.net.eval()
        generator = torch.Generator().manual_seed(int(seed))
        slices = np.concatenate([image, prior], 0).astype(np.float32).transpose(1, 0, 2, 3)  # (Z, ch, Y, X)
        out = sliding_window(
            slices,
            self.slice_size,
            lambda w: self._sample_window(w, generator),
            int(self.settings["slice_batch"]),
        )
        out = out.float().permute(1, 0, 2, 3).numpy()
        c = self.signature.num_outputs
        return out[:c], out[c : 2 * c], out[2 * c :]

    def refine_with_uncertainty(
        self, prior: np.ndarray, image: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Refined probabilities ``(C, Z, Y, X)`` and the per-voxel standard deviation over ``num_samples``."""
        calibration, diffusion, spread = self.branches(prior, image, seed)
        w = self.fusion_weight
        fused = (1 - w) * calibration + w * diffusion
        return np.clip(fused, 0, 1).astype(np.float32), np.maximum(w * spread, 0).astype(np.float32)

    def refine(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> np.ndarray:
        return self.refine_with_uncertainty(prior, image, seed)[0]

    def validate(self, cases: list[TrainingCase]) -> tuple[float, float, dict]:
        """(best mean Dice over the fusion weights, mean Dice of the priors, {"fusion_weight": best})."""
        fixed = self.settings["fusion_weight"]
        grid = FUSION_GRID if fixed == "auto" else (float(fixed),)
        scores = np.zeros((len(grid), len(cases)))
        priors = []
        for i, case in enumerate(cases):
            calibration, diffusion, _ = self.branches(case.prior, case.image, seed=i)
            target = masks(case.target, self.regions)
            priors.append(mean_dice(masks(case.prior, self.regions), target))
            for j, w in enumerate(grid):
                scores[j, i] = mean_dice(masks((1 - w) * calibration + w * diffusion, self.regions), target)
        best = int(np.argmax(scores.mean(1)))
        return float(scores[best].mean()), float(np.mean(priors)), {"fusion_weight": grid[best]}

    # --- training ------------------------------------------------------------------------------------
    def fit(
        self,
        train: list[TrainingCase],
        val: list[TrainingCase],
        folder: Path,
        settings: RefinerSettings,
        log=print,
    ) -> dict:
        patch = [int(p) for p in settings.patch_size]
        if tuple(patch[-2:]) != self.slice_size:  # the FF-Parser maps are made for the slice size
            self.settings["patch_size"] = patch
            self.net = self._build_net()
        self.learned_fusion_weight = DEFAULT_FUSION_WEIGHT
        self.settings["patch_size"] = patch

        def batch_losses(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            arrays = sample_slices(
                train, rng, settings.batch_size, int(self.settings["slices_per_case"]), self.slice_size
            )
            return self.losses(*[torch.from_numpy(a).to(self.device) for a in arrays])

        history = train_with_early_stopping(
            "MedSegDiff" if self.conditioned else "MedSegDiff (scratch)",
            self.net,
            batch_losses,
            lambda: self.validate(val),
            folder,
            settings,
            int(self.settings["warmup_epochs"]),
            log,
        )
        choices = history.get("best_choices") or {}
        self.learned_fusion_weight = float(choices.get("fusion_weight", DEFAULT_FUSION_WEIGHT))
        return history


@register
class MedSegDiffScratchRefiner(MedSegDiffRefiner):
    """The unconditional baseline: the highway sees the image slice only."""

    name = "medsegdiff_scratch"
    conditioned = False
    defaults = {**MedSegDiffRefiner.defaults, "roi": False}
