"""CorrDiff: corrective latent diffusion on the residual of a coarse segmentation (Evans et al., §3.2).

The coarse model (MedNeXt in CoMNeT) gives probabilities ``p`` and logits ``l``. CorrDiff learns the
residual ``r = y - p``: a 3D VQ-VAE encodes it into a small latent, a latent DDPM denoises that latent
conditioned on the MRI, ``p``, ``l`` and an entropy map ``u``; at inference a sampled latent is
decoded into a residual, turned into a logit correction, gated by ``p`` and ``u`` and added to ``l``
before the final sigmoid (softmax for label-based datasets). Loss (Table 1 weights):
``L = 1 * L_diff + 1 * L_recon + 0.25 * L_vq + 1 * L_seg``. The network is
:class:`~nnunet_diffrefine.networks.corrdiff.CorrDiffNet`; training is the shared loop of
:mod:`.training_loop` with :class:`CorrDiffSettings` (the paper's values by default).

The paper leaves these open; our choices:

- **Coarse logits** are recovered from the exported probabilities, ``l = logit(clip(p, 1e-4, 1 - 1e-4))``
  (``log p`` for softmax; :mod:`nnunet_diffrefine.utils.logit_space`): nnU-Net exports probabilities only,
  while the paper feeds the network's own logits. Both carry the same information up to the clipping of
  very confident voxels.
- **Identity start**: the VQ-VAE decoder's last convolution starts at zero, so an untrained CorrDiff
  decodes every latent into ``r^ = 0``, hence ``dl = 0``; the refined probabilities are
  ``p + s(l_final) - s(l)`` (exactly the prior for ``dl = 0``, the clip notwithstanding).
- **Uncertainty** ``u``: the mean binary entropy over the region channels divided by ln 2 (the
  categorical entropy divided by ln C for softmax), so ``u`` is in [0, 1]; one channel.
- **VQ-VAE** (MONAI ``VQVAE``): ``levels`` = 1 stride-2 level (latent = 1/2 of the patch per axis;
  with 2 levels and 4 channels the residual's one-voxel boundary bands did not survive the
  bottleneck), 16 x ``width`` channels, one residual layer, ``latent_channels`` = 8, a codebook of 512
  entries (EMA updates). ``L_recon`` = L1 between the reconstruction of the quantized encoding and
  ``r``; ``L_vq`` = the commitment term ``||z_e - sg(q)||^2`` (MONAI's quantizer is built with
  ``commitment_cost`` 1, so ``lambda_vq`` = 0.25 weighs it once, as Table 1 says).
- **Residual objective** (``residual_loss``): the residual ``y - p`` of a good prior is 0 almost
  everywhere, so the paper's plain L1 is minimised by reconstructing 0 (and our first CorrDiff learned
  corrections below 1e-3 everywhere). The default "balanced" L1 averages the mean error over the voxels
  the prior gets wrong (``|r| > 0.05``) and over the rest, so a zero reconstruction costs the mean
  residual of the wrong voxels; "l1" is the paper's. ``L_seg`` is weighted towards the prior's boundary
  band and uncertain voxels (``boundary_weight``, ``uncertainty_weight``; 0 and 0: the paper's).
- **Latent diffusion**: on the quantized latent (gradient stopped into the VQ-VAE); MONAI's
  ``DDPMScheduler`` defines the cosine schedule with T = 200; sampling is DDIM (eta = 0, no clipping;
  :func:`~nnunet_diffrefine.refine.sampling.ddim_sample`) in 25 steps from pure noise at ``T - 1``.
  The denoiser is MONAI's ``DiffusionModelUNet`` with 4 levels (channels (32, 64, 64, 64) x ``width``):
  MONAI always puts self-attention in the middle block, and four levels put it at 1/16 of the patch
  (560 tokens for nnU-Net's BraTS patch 128 x 160 x 112, where two levels needed a 41 GB attention
  matrix). ``L_diff`` is an MSE in the latent space, on the clean latent by default
  (``prediction_type`` "sample"; the paper's "epsilon" is available): in our short CPU trainings the
  noise-predicting denoiser's samples decoded into corrections that lowered the validation Dice.
- **Conditioning path**: ``[MRI, p, l, u]`` goes through a small convolutional encoder (``levels``
  stride-2 convolutions, 16 x ``width`` channels) to the latent grid and is concatenated with the
  noisy latent at the denoiser's input.
- **Correction and gate**: the decoded residual ``r^`` is applied in probability space and expressed
  as a logit change, ``dl = logit(clip(p + r^)) - l`` (the same clip as ``l``); the gate
  ``g = sigmoid(W [p, u, |r^|] + b)`` (a 1x1x1 convolution starting at 0, so g = 0.5) scales it per
  channel: ``l_final = l + g * dl``.
- **L_seg** (BCE + Dice on ``l_final``) is computed on a correction produced the way inference
  produces it (``seg_latent`` "sampled"): the latent is sampled from pure noise with the inference
  sampler (``inference_steps`` DDIM steps, without a graph) and only the last denoiser call, the
  decoder and the gate receive its gradient. The gate and decoder therefore learn how far to trust a
  sampled correction, not the almost-true latent a low noise level shows (weighting a one-step
  estimate from a random ``t`` by ``alpha_bar_t``, our earlier choice, did the latter). ``one_step``
  uses the single prediction from pure noise instead (one denoiser call instead of
  ``inference_steps``: what the first sampling step gives; the ``cpu`` preset's choice, where the full
  sampler made a training iteration 2-3x slower; both gave the same held-out Dice in the learning
  test's setting).
- **Patches**: random training patches (two thirds centred on the tumor or the prior, random flips);
  inference over the region of interest (:mod:`.roi`: the bounding box of what the prior calls tumor
  plus 16 voxels; the prior is returned unchanged elsewhere) with MONAI's sliding window (the
  training patch, 25 % overlap, Gaussian blending), each window sampled with its own seeded noise.
- **Optimisation**: AdamW at 1e-4, weight decay 1e-5, 5 warm-up epochs then a cosine to 1e-6
  (MedNeXt's schedule in Table 1; the paper gives none for CorrDiff), clipping 1.0, batch 2, at most
  50 epochs with early stopping after 15 (Table 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nnunet_diffrefine.losses.diffusion import weighted_dice_ce
from nnunet_diffrefine.refine.sampling import ddim_sample, train_scheduler
from nnunet_diffrefine.refine.settings import ConditionedSettings, setting
from nnunet_diffrefine.refine.volumetric import VolumetricDiffusionRefiner, loss_weights
from nnunet_diffrefine.utils.logit_space import CLIP, prior_logits, refined_probabilities

RESIDUAL_THRESHOLD = 0.05


def residual_l1(reconstruction: torch.Tensor, residual: torch.Tensor, kind: str) -> torch.Tensor:
    """``L_recon``: the paper's L1 (``"l1"``), or ``"balanced"``: the mean L1 over the voxels where the
    residual is non-zero (``|r| > 0.05``) and over the others, averaged (either alone when the other set
    is empty), so that a sparse residual is not best reconstructed by 0."""
    error = (reconstruction - residual).abs()
    if kind == "l1":
        return error.mean()
    active = residual.abs() > RESIDUAL_THRESHOLD
    parts = [error[m].mean() for m in (active, ~active) if m.any()]
    return torch.stack(parts).mean()


def coarse_inputs(prior: torch.Tensor, regions: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, uncertainty)`` from probabilities ``(B, C, ...)``: logits ``(B, C, ...)``, ``u`` ``(B, 1, ...)`` in [0, 1]."""
    logits, p = prior_logits(prior, regions), prior.clamp(CLIP, 1 - CLIP)
    if regions:
        entropy = -(p * torch.log(p) + (1 - p) * torch.log1p(-p)) / math.log(2)
        return logits, entropy.mean(1, keepdim=True)
    entropy = -(p * torch.log(p)).sum(1, keepdim=True) / math.log(max(2, p.shape[1]))
    return logits, entropy


@dataclass(frozen=True)
class CorrDiffSettings(ConditionedSettings):
    """CorrDiff's settings (Evans et al. Table 1; see the module docstring for the open choices)."""

    warmup_epochs: int = setting(5)
    inference_steps: int = setting(25)
    width: int = setting(1, "channel multiplier of the VQ-VAE, encoder and denoiser", minimum=1)
    latent_channels: int = setting(8, "VQ-VAE embedding channels", minimum=1)
    num_embeddings: int = setting(512, "VQ-VAE codebook entries", minimum=2)
    levels: int = setting(1, "VQ-VAE stride-2 levels (latent = patch / 2**levels)", minimum=1)
    denoiser_levels: int = setting(4, "levels of the latent denoiser U-Net", minimum=2)
    num_train_timesteps: int = setting(200, "diffusion steps T", minimum=2)
    schedule: str = setting(
        "cosine", "noise schedule", choices=("cosine", "linear_beta", "scaled_linear_beta")
    )
    prediction_type: str = setting(
        "sample", "the denoiser predicts the clean latent or the noise", choices=("sample", "epsilon")
    )
    residual_loss: str = setting(
        "balanced",
        "L_recon: balanced (L1 averaged over the corrected and the other voxels) or the paper's plain l1",
        choices=("balanced", "l1"),
    )
    lambda_diff: float = setting(1.0, "weight of L_diff", minimum=0)
    lambda_recon: float = setting(1.0, "weight of L_recon", minimum=0)
    lambda_vq: float = setting(0.25, "weight of the commitment loss L_vq", minimum=0)
    lambda_seg: float = setting(1.0, "weight of L_seg", minimum=0)
    seg_latent: str = setting(
        "sampled",
        "latent L_seg sees: the inference sampler's, or one prediction from noise",
        choices=("sampled", "one_step"),
    )

    PRESETS = {
        "cpu": {"seg_latent": "one_step"},
        "tiny": {"latent_channels": 4, "num_embeddings": 32, "denoiser_levels": 2},
    }


class CorrDiffRefiner(VolumetricDiffusionRefiner):
    """CorrDiff (Evans et al.): a latent diffusion of the residual y - p, gated onto the prior's logits."""

    name = "corrdiff"
    label = "CorrDiff"
    settings_class = CorrDiffSettings

    def build(self) -> None:
        from nnunet_diffrefine.networks.corrdiff import CorrDiffNet

        s = self.settings
        self.net = CorrDiffNet(
            self.signature.num_input_channels,
            self.signature.num_outputs,
            s.width,
            s.latent_channels,
            s.num_embeddings,
            levels=s.levels,
            denoiser_levels=s.denoiser_levels,
        ).to(self.device)
        self.scheduler = train_scheduler(s.num_train_timesteps, s.schedule, s.prediction_type)

    @classmethod
    def patch_multiple_of(cls, settings: CorrDiffSettings) -> int:
        """The VQ-VAE's ``levels`` stride-2 levels and the denoiser's ``denoiser_levels - 1``."""
        return 2 ** (settings.levels + settings.denoiser_levels - 1)

    # --- sampling ------------------------------------------------------------------------------------
    def sample_latent(self, cond: torch.Tensor, noise: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """The clean latent sampled from ``noise`` (``z_T``) given the conditioning features ``cond``;
        ``grad``: as ``seg_latent`` says, with gradients through the last denoiser call."""
        s = self.settings
        steps = 1 if grad and s.seg_latent == "one_step" else s.inference_steps

        def model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net.denoise(z, t, cond)

        t_start = s.num_train_timesteps - 1
        return ddim_sample(
            model, noise, self.scheduler.betas, t_start, steps, s.prediction_type, grad_last=grad
        )

    def latent_shape(self, spatial: tuple[int, ...], batch: int) -> tuple[int, ...]:
        factor = 2**self.settings.levels
        return (batch, self.settings.latent_channels, *[n // factor for n in spatial])

    # --- losses --------------------------------------------------------------------------------------
    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The four CorrDiff losses on a batch ``(B, ..., Z, Y, X)`` (see the module docstring)."""
        net, s = self.net, self.settings
        logits, u = coarse_inputs(prior, self.regions)
        residual = target - prior
        encoding = net.vqvae.encode(residual)
        quantized, l_vq = net.vqvae.quantize(encoding)
        l_recon = residual_l1(net.vqvae.decode(quantized), residual, s.residual_loss)
        z0 = quantized.detach()
        noise = torch.randn_like(z0)
        t = torch.randint(0, s.num_train_timesteps, (z0.shape[0],), device=z0.device)
        cond = net.condition(image, prior, logits, u)
        output = net.denoise(self.scheduler.add_noise(z0, noise, t), t, cond)
        l_diff = F.mse_loss(output, z0 if s.prediction_type == "sample" else noise)
        sampled = self.sample_latent(cond, torch.randn_like(z0), grad=True)
        final_logits = net.correct(prior, logits, u, net.vqvae.decode(sampled), self.regions)
        l_seg = weighted_dice_ce(final_logits, target, self.regions, loss_weights(self, prior))
        total = s.lambda_diff * l_diff + s.lambda_recon * l_recon + s.lambda_vq * l_vq + s.lambda_seg * l_seg
        return {"loss": total, "diff": l_diff, "recon": l_recon, "vq": l_vq, "seg": l_seg}

    # --- inference -----------------------------------------------------------------------------------
    def sample(self, image: torch.Tensor, prior: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One sample of refined probabilities ``(B, C, ...)`` for windows ``image`` and ``prior``."""
        logits, u = coarse_inputs(prior, self.regions)
        cond = self.net.condition(image, prior, logits, u)
        shape = self.latent_shape(tuple(prior.shape[2:]), prior.shape[0])
        z = self.sample_latent(cond, torch.randn(shape, generator=generator).to(self.device))
        final = self.net.correct(prior, logits, u, self.net.vqvae.decode(z), self.regions)
        return refined_probabilities(prior, final, logits, self.regions)
