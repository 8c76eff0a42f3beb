"""Ke et al.'s 3D U-Net diffusion refiner (§3.3): conditional DDPM over the label map, and its
unconditional ("scratch") baseline.

The label map ``Y0`` (``C`` channels: the region masks, or the one-hot classes with background) is
diffused as ``2 Y0 - 1``; a 3D U-Net predicts the clean map (``x0``-parameterisation) from
``[I; Y_t]`` (unconditional, ``I + C`` channels) or ``[I; Y_t; C_prior]`` (conditioned, ``I + 2C``).
Cosine schedule, ``T = 1000``. Loss (eq. 9): ``DiceCE(Y0^, y) + 0.1 * mean_x w(x) ||s(Y0^) - Y0||^2``
with ``s`` the sigmoid (regions) or softmax (labels) and ``w = 3`` on class edges
(:mod:`nnunet_diffrefine.losses.diffusion`). Inference: the conditioned model noises the prior
to ``t' = start_fraction * T`` and runs a few DDIM steps down to 0; the scratch model samples from
pure noise with second-order DPM-Solver++ (:mod:`nnunet_diffrefine.refine.sampling`).

The paper leaves these open; our choices:

- **Denoiser**: MONAI ``DiffusionModelUNet`` (3D), ``channels`` (8, 16, 32, 32) (0.73 M parameters
  for 4 images and 3 regions; the paper gives no size), one residual block per level, no attention in
  the encoder and decoder, group norm with 8 groups, sinusoidal timestep embedding. MONAI always puts
  self-attention in the middle block: four levels keep it at 1/8 of the patch per axis (512 tokens
  for 64³; with three levels (16, 32, 64), 16³ tokens made a 64³ window 2-3x slower, and a 96³ patch would need
  about 6 GB for the attention matrix). Patches must be multiples of ``2 ** (levels - 1)`` (8).
  The output are logits ``l``; the clean-map estimate the sampler uses is ``2 s(l) - 1`` (so it stays
  in [-1, 1]), and the refined probabilities are ``s(l)`` of the last call (what the final step to
  ``sigma = 0`` returns).
- **Prior channels** enter as ``2 p - 1`` (the scale of ``Y_t``); the prior of the paper's 4 classes is
  our ``C`` nnU-Net outputs (3 sigmoid regions for BraTS region training).
- **Identity start** (conditioned model only): the denoiser predicts the clean map's logits as an offset
  from the prior's, ``l = logit(p) + net(...)`` (:mod:`nnunet_diffrefine.utils.logit_space`), and MONAI's
  ``DiffusionModelUNet`` starts its output convolution at zero; the refined probabilities are
  ``p + s(l) - s(logit(p))`` of the last call. An untrained conditioned DDPM returns the prior exactly,
  where the paper's model, predicting the whole map, has no path that keeps it (on the phantom benchmark
  it lowered every test case's Dice).
- **Training timesteps**: uniform over ``[0, T)``. The conditioned model is only ever queried on a
  noised *prior* at ``t <= t'``, while DDPM training noises the ground truth, which at ``t' = 400``
  (cosine: ``alpha_bar = 0.65``) still shows the true boundary: a network trained only that way is
  asked at inference to correct an input it never saw. With probability ``prior_noising`` (0.5) a
  training sample is therefore built as at inference, ``Y_t = sqrt(a_t) (2p - 1) + sqrt(1 - a_t) eps``
  with ``t`` uniform in ``[0, t']``, against the same target ``y`` (0 for the scratch model, which has
  no prior; 0 also gives plain DDPM training). The evidence is weak: in the short CPU training of the
  tests, held-out Dice 0.769 with 0.5 vs 0.752 with 0 (one run each, start fraction 0.4).
- **Inference**: ``t' = round(start_fraction * T)`` = 400 and ``inference_steps`` = 5 DDIM steps at
  ``t' , 4t'/5, ..., t'/5`` (conditioned); 6 DPM-Solver++(2M) steps from ``T - 1`` (scratch). Sliding
  window with the training patch size (MONAI, 25 % overlap, Gaussian blending), every window
  sampled with its own seeded noise. ``num_samples`` > 1 averages that many samples;
  :meth:`DDPMRefiner.refine_with_uncertainty` also returns their per-voxel standard deviation (blended
  across windows like the mean).
- **Cost** (``benchmarks/bench_refine_cost.py``, 2 CPU cores, a case on the BraTS 1 mm grid, the
  Swin-UNETR patch 128 x 160 x 128 as window): the conditioned refiner works on the prior's region of
  interest (:mod:`nnunet_diffrefine.refine.roi`) and took 35 s against 346 s for Swin-UNETR's own
  prediction (no mirroring); the scratch model samples the whole volume and took 514 s with 10 steps,
  more than the prediction, hence its default of 6 steps (see ``benchmarks/results/refine_cost.md``).
  ``inference_steps`` and ``num_samples`` raise the cost linearly.
- **Optimisation**: the shared loop (:mod:`nnunet_diffrefine.refine.training_loop`) with
  :class:`DDPMSettings`, whose defaults are Table 2's: 96³ patches, batch 2, AdamW at 1e-4 with
  weight decay 1e-5, 10 warm-up epochs from 1e-6 then a cosine to 1e-6, clipping 1.0, at most 1000
  epochs (scratch: 300) with early stopping after 150.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nnunet_diffrefine.losses.diffusion import boundary_mse, output_probabilities, weighted_dice_ce
from nnunet_diffrefine.refine.sampling import ddim_sample, dpm_solver_sample, train_scheduler
from nnunet_diffrefine.refine.settings import ConditionedSettings, setting
from nnunet_diffrefine.refine.volumetric import VolumetricDiffusionRefiner, loss_weights
from nnunet_diffrefine.utils.logit_space import prior_logits, refined_probabilities


@dataclass(frozen=True)
class DDPMSettings(ConditionedSettings):
    """The conditioned 3D DDPM's settings (Ke et al. Table 2; see the module docstring)."""

    max_epochs: int = setting(1000)
    patience: int = setting(150)
    patch_size: tuple[int, int, int] | None = setting((96, 96, 96))
    inference_steps: int = setting(5)
    channels: tuple[int, ...] = setting((8, 16, 32, 32), "denoiser U-Net channels per level")
    num_train_timesteps: int = setting(1000, "diffusion steps T", minimum=2)
    schedule: str = setting(
        "cosine", "noise schedule", choices=("cosine", "linear_beta", "scaled_linear_beta")
    )
    start_fraction: float = setting(
        0.4, "conditioned sampling starts from the prior noised to this share of T", above=0, maximum=1
    )
    prior_noising: float = setting(
        0.5, "share of training samples noised from the prior, as at inference", minimum=0, maximum=1
    )
    edge_weight: float = setting(3.0, "weight of class-edge voxels in the MSE term", minimum=1)
    mse_weight: float = setting(0.1, "weight of the edge-weighted MSE term", minimum=0)

    PRESETS = {"cpu": {"learning_rate": 2e-3}, "tiny": {"channels": (8, 16, 16)}}


@dataclass(frozen=True)
class DDPMScratchSettings(DDPMSettings):
    """The unconditional baseline's settings (Table 2: 300 epochs)."""

    max_epochs: int = setting(300)
    inference_steps: int = setting(6)
    prior_noising: float = setting(0.0)
    roi: bool = setting(False)
    perturbed_priors: float = setting(0.0)  # no prior: nothing to perturb, no prior-weighted loss
    boundary_weight: float = setting(0.0)
    uncertainty_weight: float = setting(0.0)


def denoiser_unet(in_channels: int, out_channels: int, channels: tuple[int, ...]) -> torch.nn.Module:
    """MONAI's 3D ``DiffusionModelUNet`` as the module docstring describes it (its output layer at zero)."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        num_res_blocks=1,
        channels=channels,
        attention_levels=(False,) * len(channels),
        norm_num_groups=8,
    )


class DDPMRefiner(VolumetricDiffusionRefiner):
    """Ke et al.'s conditioned 3D DDPM: denoises the label map from the prior noised to t' = 0.4 T."""

    name = "ddpm"
    label = "DDPM"
    settings_class = DDPMSettings

    def build(self) -> None:
        c, s = self.signature.num_outputs, self.settings
        in_channels = self.signature.num_input_channels + (2 if self.uses_prior else 1) * c
        self.net = denoiser_unet(in_channels, c, s.channels).to(self.device)
        self.scheduler = train_scheduler(s.num_train_timesteps, s.schedule, "sample")

    @classmethod
    def patch_multiple_of(cls, settings: DDPMSettings) -> int:
        return 2 ** (len(settings.channels) - 1)

    @property
    def start_timestep(self) -> int:
        t = self.settings.num_train_timesteps
        return int(min(max(round(self.settings.start_fraction * t), 1), t - 1))

    # --- the denoiser --------------------------------------------------------------------------------
    def logits(
        self, image: torch.Tensor, y_t: torch.Tensor, prior: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Clean-map logits ``(B, C, ...)`` from the image ``(B, I, ...)``, ``Y_t`` and the prior ``(B, C, ...)``
        (conditioned: an offset from the prior's logits, see the module docstring)."""
        if not self.uses_prior:
            return self.net(torch.cat([image, y_t], 1), t)
        return prior_logits(prior, self.regions) + self.net(torch.cat([image, y_t, 2 * prior - 1], 1), t)

    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Eq. (9) on a batch ``(B, ..., Z, Y, X)`` (see the module docstring for the prior-noised samples)."""
        s = self.settings
        b, total = target.shape[0], s.num_train_timesteps
        source = 2 * target - 1
        t = torch.randint(0, total, (b,), device=self.device)
        if self.uses_prior and s.prior_noising > 0:
            from_prior = torch.rand(b, device=self.device) < s.prior_noising
            t = torch.where(
                from_prior, torch.randint(0, self.start_timestep + 1, (b,), device=self.device), t
            )
            source = torch.where(from_prior.view(-1, *[1] * (target.ndim - 1)), 2 * prior - 1, source)
        y_t = self.scheduler.add_noise(source, torch.randn_like(source), t)
        logits = self.logits(image, y_t, prior, t)
        seg = weighted_dice_ce(logits, target, self.regions, loss_weights(self, prior))
        mse = boundary_mse(output_probabilities(logits, self.regions), target, s.edge_weight)
        return {"loss": seg + s.mse_weight * mse, "dice_ce": seg, "boundary_mse": mse}

    # --- inference -----------------------------------------------------------------------------------
    def sample(self, image: torch.Tensor, prior: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One refined label map ``(B, C, ...)`` in [0, 1]: DDIM from the noised prior (conditioned) or
        DPM-Solver++ from pure noise (scratch)."""

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return 2 * output_probabilities(self.logits(image, x, prior, t), self.regions) - 1

        steps, betas = self.settings.inference_steps, self.scheduler.betas
        noise = torch.randn(prior.shape, generator=generator).to(self.device)
        if not self.uses_prior:
            return ((dpm_solver_sample(model, noise, betas, steps, "sample") + 1) / 2).clamp(0, 1)
        t0 = self.start_timestep
        start = self.scheduler.add_noise(2 * prior - 1, noise, torch.full((prior.shape[0],), t0))
        last: list[torch.Tensor] = []

        def kept(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            last[:] = [self.logits(image, x, prior, t)]
            return 2 * output_probabilities(last[0], self.regions) - 1

        ddim_sample(kept, start, betas, t0, steps, "sample")
        return refined_probabilities(prior, last[0], prior_logits(prior, self.regions), self.regions)


class DDPMScratchRefiner(DDPMRefiner):
    """Ke et al.'s unconditional DDPM baseline: 6 DPM-Solver++(2M) steps from pure noise, no prior."""

    name = "ddpm_scratch"
    label = "DDPM (scratch)"
    settings_class = DDPMScratchSettings
    uses_prior = False
