"""Ke et al.'s MedSegDiff refiner (§3.4) on 2D axial slices, conditioned on the coarse prior, and its
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
- **Batch**: ``batch_size`` slices per iteration (Table 2: 32), ``slices_per_case`` (16) from each of
  ``batch_size / slices_per_case`` randomly drawn cases.
- **DiceCE**: soft Dice (eq. 2, batch Dice over the slices) + BCE per region channel (softmax Dice over
  the foreground + CE for label-based outputs), see :mod:`nnunet_diffrefine.losses.diffusion`.
- **Sampling**: ``inference_steps`` = 10 DPM-Solver++(2M) steps, every ``x0`` estimate clipped to
  [-1, 1] (MedSegDiff's ``clip_denoised``). The diffusion mask ``p_d = (s0 + 1) / 2`` (clipped to [0, 1];
  renormalised over the classes for softmax outputs, uniform where all are 0).
- **Identity start** (conditioned): the highway's logits are an offset from the prior's,
  ``c = logit(p) + highway(...)`` with the highway's head starting at zero, and the calibration map is
  ``p_c = p + s(c) - s(logit(p))`` (:mod:`nnunet_diffrefine.utils.logit_space`); with the fusion weight
  0 before any training, an untrained conditioned MedSegDiff returns the prior exactly.
- **Fusion**: ``p = w p_d + (1 - w) p_c`` with the calibration map ``p_c = sigmoid(c)`` (softmax for
  labels; conditioned: as above). ``fusion_weight`` = "auto" learns ``w`` on the validation cases: after every epoch the
  weight of {0, 0.25, 0.5, 0.75, 1} with the best mean validation Dice is kept with that epoch (and
  saved with the weights; before training 0 for the conditioned model, the identity, and 0.5, the mean
  of the two, for the scratch model); a number fixes ``w``. MedSegDiff's
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
- **Optimisation**: the shared loop (:mod:`nnunet_diffrefine.refine.training_loop`) with
  :class:`MedSegDiffSettings`, whose defaults are Table 2's: 128 x 128 slices, batch 32, AdamW at
  4e-4 without weight decay, 10 warm-up epochs from 1e-6 then a cosine to 1e-6, clipping 1.0, at most
  300 epochs with early stopping after 100.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.losses.diffusion import output_probabilities, weighted_dice_ce
from nnunet_diffrefine.refine.base import Refiner
from nnunet_diffrefine.refine.metrics import ValidationResult, masks, mean_dice
from nnunet_diffrefine.refine.patches import sample_slices, sliding_window
from nnunet_diffrefine.refine.roi import refine_in_roi
from nnunet_diffrefine.refine.sampling import dpm_solver_sample, train_scheduler
from nnunet_diffrefine.refine.settings import ConditionedSettings, setting
from nnunet_diffrefine.refine.volumetric import loss_weights
from nnunet_diffrefine.utils.logit_space import prior_logits, refined_probabilities

FUSION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_FUSION_WEIGHT = 0.5


@dataclass(frozen=True)
class MedSegDiffSettings(ConditionedSettings):
    """Conditioned MedSegDiff's settings (Ke et al. Table 2; see the module docstring)."""

    max_epochs: int = setting(300)
    patience: int = setting(100)
    learning_rate: float = setting(4e-4)
    weight_decay: float = setting(0.0)
    batch_size: int = setting(32)
    patch_size: tuple[int, int, int] | None = setting((1, 128, 128))
    channels: tuple[int, ...] = setting((16, 32, 64), "U-Net channels per level (highway and denoiser)")
    num_train_timesteps: int = setting(1000, "diffusion steps T", minimum=2)
    schedule: str = setting(
        "linear_beta", "noise schedule", choices=("cosine", "linear_beta", "scaled_linear_beta")
    )
    calibration_weight: float = setting(10.0, "weight of the highway's DiceCE in eq. (12)", minimum=0)
    fusion_weight: float | str = setting(
        "auto",
        "weight of the diffusion map in the output: a number in [0, 1], or auto (chosen on validation)",
        minimum=0,
        maximum=1,
        choices=("auto",),
    )
    slices_per_case: int = setting(16, "slices drawn from each case of a batch", minimum=1)
    slice_batch: int = setting(32, "slice windows per network call at inference", minimum=1)

    PRESETS = {
        "cpu": {"learning_rate": 2e-3, "batch_size": 16, "slices_per_case": 8},
        "tiny": {"channels": (8, 16, 16), "batch_size": 8, "slices_per_case": 4},
    }


@dataclass(frozen=True)
class MedSegDiffScratchSettings(MedSegDiffSettings):
    """The unconditional baseline's settings (identical optimisation, Table 2)."""

    roi: bool = setting(False)
    perturbed_priors: float = setting(0.0)  # no prior: nothing to perturb, no prior-weighted loss
    boundary_weight: float = setting(0.0)
    uncertainty_weight: float = setting(0.0)


class MedSegDiffRefiner(Refiner):
    """Ke et al.'s MedSegDiff on axial slices: a highway U-Net with FF-Parsers and a noise predictor, fused."""

    name = "medsegdiff"
    label = "MedSegDiff"
    settings_class = MedSegDiffSettings

    def check_settings(self) -> None:
        super().check_settings()
        s = self.settings
        if s.batch_size % s.slices_per_case:
            raise InputError(
                f"{self.name}: batch_size {s.batch_size} (slices) must be a multiple of slices_per_case {s.slices_per_case}"
            )
        if s.patch_size is None:
            raise InputError(f"{self.name}: patch_size must be given (its last two sides are the slice size)")

    def build(self) -> None:
        from nnunet_diffrefine.networks.medsegdiff import MedSegDiffNet

        c, s = self.signature.num_outputs, self.settings
        self.scheduler = train_scheduler(s.num_train_timesteps, s.schedule, "epsilon")
        cond_channels = self.signature.num_input_channels + (c if self.uses_prior else 0)
        self.net = MedSegDiffNet(cond_channels, c, self.slice_size, list(s.channels)).to(self.device)
        self.learned_fusion_weight = self.untrained_fusion_weight

    @property
    def untrained_fusion_weight(self) -> float:
        """0 for the conditioned model (the calibration map alone: the prior, untrained), else 0.5."""
        return 0.0 if self.uses_prior else DEFAULT_FUSION_WEIGHT

    @classmethod
    def patch_multiple_of(cls, settings: MedSegDiffSettings) -> int:
        """Of the slice sides (the first patch axis is free)."""
        return 2 ** (len(settings.channels) - 1)

    @staticmethod
    def patch_axes(patch: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(patch[-2:])

    @property
    def slice_size(self) -> tuple[int, int]:
        return tuple(int(p) for p in self.settings.patch_size[-2:])

    def extra_state(self) -> dict:
        return {"fusion_weight": float(self.learned_fusion_weight)}

    def load_extra_state(self, state: dict) -> None:
        self.learned_fusion_weight = float(state.get("fusion_weight", self.untrained_fusion_weight))

    def apply_choices(self, choices: dict) -> None:
        self.learned_fusion_weight = float(choices.get("fusion_weight", self.untrained_fusion_weight))

    def condition(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """The highway's input ``(B, I [+ C], H, W)``."""
        return torch.cat([image, 2 * prior - 1], 1) if self.uses_prior else image

    def calibration_logits(self, highway_logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """``c``: the highway's output, offset from the prior's logits when conditioned."""
        return prior_logits(prior, self.regions) + highway_logits if self.uses_prior else highway_logits

    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Eq. (12) on a batch of slices ``(N, ..., H, W)``."""
        s0 = 2 * target - 1
        noise = torch.randn_like(s0)
        t = torch.randint(0, self.settings.num_train_timesteps, (s0.shape[0],), device=self.device)
        eps, logits = self.net(self.scheduler.add_noise(s0, noise, t), t, self.condition(image, prior))
        logits = self.calibration_logits(logits, prior)
        l_noise = F.mse_loss(eps, noise)
        l_cal = weighted_dice_ce(logits, target, self.regions, loss_weights(self, prior))
        return {
            "loss": l_noise + self.settings.calibration_weight * l_cal,
            "noise": l_noise,
            "dice_ce": l_cal,
        }

    def training_losses(self, cases, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        s = self.settings
        perturb = s.perturbed_priors if self.uses_prior else 0.0
        arrays = sample_slices(
            cases,
            rng,
            s.batch_size // s.slices_per_case,
            s.slices_per_case,
            self.slice_size,
            self.regions,
            perturb,
        )
        return self.losses(*[torch.from_numpy(a).to(self.device) for a in arrays])

    # --- inference -----------------------------------------------------------------------------------
    @property
    def fusion_weight(self) -> float:
        """The weight of the diffusion map in the fused output: the ``fusion_weight`` setting when it is a
        number, else the one selected on the validation cases (:attr:`untrained_fusion_weight` before)."""
        fixed = self.settings.fusion_weight
        return float(self.learned_fusion_weight if fixed == "auto" else fixed)

    @torch.no_grad()
    def _sample_window(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(N, 3C, H, W)``: the calibration map, and the mean and standard deviation of ``num_samples``
        diffusion maps."""
        window = window.to(self.device)
        n_in, c = self.signature.num_input_channels, self.signature.num_outputs
        image, prior = window[:, :n_in], window[:, n_in:]
        logits, features = self.net.condition(self.condition(image, prior))
        logits = self.calibration_logits(logits, prior)

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net.denoise(x, t, features)

        samples = []
        for _ in range(self.settings.num_samples):
            noise = torch.randn((window.shape[0], c, *window.shape[2:]), generator=generator).to(self.device)
            s0 = dpm_solver_sample(
                model, noise, self.scheduler.betas, self.settings.inference_steps, "epsilon", clip=True
            )
            diffusion = ((s0 + 1) / 2).clamp(0, 1)
            if not self.regions:
                diffusion = (diffusion + 1e-6) / (diffusion + 1e-6).sum(1, keepdim=True)  # all 0: uniform
            samples.append(diffusion)
        stacked = torch.stack(samples)
        if self.uses_prior:
            calibration = refined_probabilities(
                prior, logits, prior_logits(prior, self.regions), self.regions
            )
        else:
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
            slices, self.slice_size, lambda w: self._sample_window(w, generator), self.settings.slice_batch
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

    def validate(self, cases) -> ValidationResult:
        """The best mean Dice over the fusion weights (or the fixed one), the priors' Dice, the weight, and
        as diagnostics the Dice of each branch alone (``highway_alone_dice``: w = 0;
        ``diffusion_alone_dice``: w = 1), which tells whether the diffusion branch is usable."""
        fixed = self.settings.fusion_weight
        grid = FUSION_GRID if fixed == "auto" else (float(fixed),)
        scores = np.zeros((len(grid), len(cases)))
        alone = np.zeros((2, len(cases)))
        priors = []
        for i, case in enumerate(cases):
            calibration, diffusion, _ = self.branches(case.prior, case.image, seed=i)
            target = masks(case.target, self.regions)
            priors.append(mean_dice(masks(case.prior, self.regions), target))
            for j, w in enumerate(grid):
                scores[j, i] = mean_dice(masks((1 - w) * calibration + w * diffusion, self.regions), target)
            alone[:, i] = [mean_dice(masks(m, self.regions), target) for m in (calibration, diffusion)]
        best = int(np.argmax(scores.mean(1)))
        diagnostics = {
            "highway_alone_dice": float(alone[0].mean()),
            "diffusion_alone_dice": float(alone[1].mean()),
        }
        return ValidationResult(
            float(scores[best].mean()), float(np.mean(priors)), {"fusion_weight": grid[best]}, diagnostics
        )


class MedSegDiffScratchRefiner(MedSegDiffRefiner):
    """Ke et al.'s unconditional MedSegDiff baseline: the highway sees the image slice only."""

    name = "medsegdiff_scratch"
    label = "MedSegDiff (scratch)"
    settings_class = MedSegDiffScratchSettings
    uses_prior = False
