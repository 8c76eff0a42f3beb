"""CorrDiff: corrective latent diffusion on the residual of a coarse segmentation (seed 002, §3.2).

The coarse model (MedNeXt in CoMNeT) gives probabilities ``p`` and logits ``l``. CorrDiff learns the
residual ``r = y - p``: a 3D VQ-VAE encodes it into a small latent, a latent DDPM denoises that latent
conditioned on the MRI, ``p``, ``l`` and an entropy map ``u``; at inference a sampled latent is
decoded into a residual, turned into a logit correction, gated by ``p`` and ``u`` and added to ``l``
before the final sigmoid (softmax for label-based datasets). Loss (Table 1 weights):
``L = 1 * L_diff + 1 * L_recon + 0.25 * L_vq + 1 * L_seg``.

The paper leaves these open; our choices:

- **Coarse logits** are recovered from the exported probabilities, ``l = logit(clip(p, 1e-4, 1 - 1e-4))``
  (``log p`` for softmax), since nnU-Net exports probabilities only.
- **Uncertainty** ``u``: the mean binary entropy over the region channels divided by ln 2 (the
  categorical entropy divided by ln C for softmax), so ``u`` is in [0, 1]; one channel.
- **VQ-VAE** (MONAI ``VQVAE``): ``levels`` = 1 stride-2 level (latent = 1/2 of the patch per axis;
  with 2 levels and 4 channels the residual's one-voxel boundary bands did not survive the
  bottleneck), 16 x ``width`` channels, one residual layer, ``latent_channels`` = 8 embedding
  channels, a codebook of 512 entries (EMA updates, commitment cost 0.25). ``L_recon`` = L1 between the
  reconstruction of the quantized encoding and ``r``; ``L_vq`` = MONAI's commitment loss.
- **Latent diffusion**: the diffusion runs on the quantized latent (gradient stopped into the VQ-VAE);
  MONAI ``DDPMScheduler`` with a cosine schedule and T = 200 for training, MONAI ``DDIMScheduler``
  (eta = 0, no clipping) with 25 reverse steps at inference, from pure noise; the denoiser is MONAI's
  ``DiffusionModelUNet`` with ``denoiser_levels`` = 4 levels (channels (32, 64, 64, 64) x ``width``, no
  attention in the levels). MONAI always puts self-attention in the middle block, at the deepest
  level: with two levels it ran on 1/4 of the patch per axis, which for nnU-Net's BraTS patch
  (128 x 160 x 112) is 35,840 tokens and a 41 GB attention matrix; four levels put it at 1/16 of the
  patch (560 tokens), the extra levels cost little. ``L_diff`` is an MSE in the
  latent space. The paper's denoiser predicts the noise; ours predicts the clean latent by default
  (``prediction_type="sample"``; ``"epsilon"`` is available): in our short CPU trainings the
  noise-predicting denoiser's DDIM samples decoded into corrections that lowered the validation
  Dice below the prior's, while the clean-latent one raised it (see the tests and benchmarks).
- **Conditioning path**: ``[MRI, p, l, u]`` goes through a small convolutional encoder (``levels``
  stride-2 convolutions, 16 x ``width`` channels) down to the latent grid and is concatenated with the noisy
  latent at the denoiser's input.
- **Correction and gate**: the decoded residual ``r^`` is applied in probability space and expressed
  as a logit change, ``dl = logit(clip(p + r^, 1e-3, 1 - 1e-3)) - l``; the gate
  ``g = sigmoid(W [p, u, |r^|] + b)`` (a learned 1x1x1 convolution, weights and bias starting at 0,
  so g = 0.5) scales it per channel: ``l_final = l + g * dl``.
- **L_seg** (BCE + Dice on ``l_final``) needs a decoded latent during training; it uses the one-step
  estimate ``z0^ = (z_t - sqrt(1 - a_t) eps^) / sqrt(a_t)`` at the sampled step, clipped to [-5, 5]
  and weighted by ``a_t`` (noisier estimates count less).
- **Patches**: training on random patches (two thirds centred on the tumor or the prior), random
  flips; inference over the whole preprocessed volume with MONAI's sliding window (the training
  patch size, 25 % overlap, Gaussian blending), every window sampled with its own seeded noise.
- **Region of interest**: at inference CorrDiff only runs on the bounding box of what the prior calls
  tumor (probability > 0.05) plus 16 voxels, and returns the prior unchanged elsewhere
  (:mod:`nnunet_diffrefine.refine.roi`; ``roi: false`` for the whole volume). A residual is a
  correction of the prior: far from it there is nothing to correct, and on nnU-Net's BraTS grid the
  box is one or two windows instead of eight, which is what keeps a 25-step sampler below half the
  cost of MedNeXt's own prediction (``benchmarks/bench_refine_cost.py``).
- **Early stopping** on the mean validation Dice of the refined masks (threshold 0.5), patience 15
  epochs, at most 50 epochs; the best weights are kept.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_diffrefine.refine.base import Refiner, RefinerSettings, TrainingCase, register
from nnunet_diffrefine.refine.roi import ROI_DEFAULTS, refine_in_roi
from nnunet_diffrefine.utils.io import atomic_output_file, write_json

LATEST_FILE = "refiner_latest.pth"
EPS_LOGIT = 1e-4
EPS_CORRECTION = 1e-3


def coarse_inputs(prior: torch.Tensor, regions: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, uncertainty)`` from probabilities ``(B, C, ...)``: logits ``(B, C, ...)``, ``u`` ``(B, 1, ...)`` in [0, 1]."""
    p = prior.clamp(EPS_LOGIT, 1 - EPS_LOGIT)
    if regions:
        logits = torch.log(p) - torch.log1p(-p)
        entropy = -(p * torch.log(p) + (1 - p) * torch.log1p(-p)) / math.log(2)
        return logits, entropy.mean(1, keepdim=True)
    logits = torch.log(p)
    entropy = -(p * torch.log(p)).sum(1, keepdim=True) / math.log(max(2, p.shape[1]))
    return logits, entropy


class CorrDiffNet(nn.Module):
    """The trainable parts: residual VQ-VAE, conditioning encoder, latent denoiser and gate.

    ``in_channels``: MRI channels; ``num_outputs``: probability channels ``C``. Spatial sizes must be
    multiples of ``2 ** (levels + denoiser_levels - 1)`` (the VQ-VAE levels and the denoiser's downsamplings).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        width: int = 1,
        latent_channels: int = 8,
        num_embeddings: int = 512,
        levels: int = 1,
        denoiser_levels: int = 4,
    ) -> None:
        super().__init__()
        from monai.networks.nets import VQVAE, DiffusionModelUNet

        c = num_outputs
        vq_ch = tuple(16 * width * 2**i for i in range(levels))
        self.vqvae = VQVAE(
            spatial_dims=3,
            in_channels=c,
            out_channels=c,
            channels=vq_ch,
            num_res_channels=vq_ch,
            num_res_layers=1,
            downsample_parameters=((2, 4, 1, 1),) * levels,
            upsample_parameters=((2, 4, 1, 1, 0),) * levels,
            num_embeddings=num_embeddings,
            embedding_dim=latent_channels,
            commitment_cost=0.25,
            ddp_sync=False,
        )
        cond_ch = 16 * width
        layers: list[nn.Module] = [nn.Conv3d(in_channels + 2 * c + 1, cond_ch, 3, padding=1), nn.GELU()]
        for _ in range(levels):
            layers += [nn.Conv3d(cond_ch, cond_ch, 4, stride=2, padding=1), nn.GELU()]
        self.cond_encoder = nn.Sequential(*layers, nn.Conv3d(cond_ch, cond_ch, 3, padding=1))
        self.denoiser = DiffusionModelUNet(
            spatial_dims=3,
            in_channels=latent_channels + cond_ch,
            out_channels=latent_channels,
            num_res_blocks=1,
            channels=tuple(min(32 * 2**i, 64) * width for i in range(denoiser_levels)),
            attention_levels=(False,) * denoiser_levels,
            norm_num_groups=8,
        )
        self.gate = nn.Conv3d(2 * c + 1, c, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def condition(
        self, image: torch.Tensor, prior: torch.Tensor, logits: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        return self.cond_encoder(torch.cat([image, prior, logits, u], 1))

    def correct(
        self,
        prior: torch.Tensor,
        logits: torch.Tensor,
        u: torch.Tensor,
        residual: torch.Tensor,
        regions: bool,
    ) -> torch.Tensor:
        """Final logits ``l + g * dl`` from a decoded residual ``r^`` (all ``(B, C, ...)``)."""
        target = (prior + residual).clamp(EPS_CORRECTION, 1 - EPS_CORRECTION)
        target_logits = torch.log(target) - torch.log1p(-target) if regions else torch.log(target)
        gate = torch.sigmoid(self.gate(torch.cat([prior, u, residual.abs()], 1)))
        return logits + gate * (target_logits - logits)


def _dice_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    axes = tuple(range(2, probs.ndim))
    inter = (probs * target).sum(axes)
    return 1 - ((2 * inter + eps) / (probs.sum(axes) + target.sum(axes) + eps)).mean()


def _mean_dice(pred: np.ndarray, target: np.ndarray) -> float:
    scores = []
    for c in range(pred.shape[0]):
        p, t = pred[c], target[c]
        denom = p.sum() + t.sum()
        scores.append(1.0 if denom == 0 else 2.0 * np.logical_and(p, t).sum() / denom)
    return float(np.mean(scores))


def _foreground_onehot(probabilities: np.ndarray) -> np.ndarray:
    """Argmax one-hot masks of the foreground classes ``(C - 1, ...)`` from softmax probabilities ``(C, ...)``."""
    winner = probabilities.argmax(0)
    return np.stack([winner == j for j in range(1, probabilities.shape[0])])


@register
class CorrDiffRefiner(Refiner):
    """CorrDiff as a refiner (see the module docstring). Settings: ``width`` (1), ``latent_channels`` (8),
    ``levels`` (1), ``denoiser_levels`` (4), ``num_train_timesteps`` (200), ``inference_steps`` (25), ``num_samples`` (1),
    ``patch_size``, ``schedule`` ("cosine"), ``prediction_type`` ("sample"), ``roi`` (True), ``roi_threshold``
    (0.05), ``roi_margin`` (16)."""

    name = "corrdiff"

    def __init__(self, signature, device="cpu", **settings) -> None:
        defaults = {
            "width": 1,
            "latent_channels": 8,
            "levels": 1,
            "denoiser_levels": 4,
            "num_train_timesteps": 200,
            "inference_steps": 25,
            "num_samples": 1,
            "patch_size": [64, 64, 64],
            "schedule": "cosine",
            "prediction_type": "sample",
            **ROI_DEFAULTS,
        }
        super().__init__(signature, device, **{**defaults, **settings})
        s = self.settings
        self.net = CorrDiffNet(
            signature.num_input_channels,
            signature.num_outputs,
            int(s["width"]),
            int(s["latent_channels"]),
            levels=int(s["levels"]),
            denoiser_levels=int(s["denoiser_levels"]),
        ).to(self.device)
        self.regions = signature.regions

    @property
    def patch_multiple(self) -> int:
        """The VQ-VAE's ``levels`` stride-2 levels and the denoiser's ``denoiser_levels - 1``."""
        return 2 ** (int(self.settings["levels"]) + int(self.settings["denoiser_levels"]) - 1)

    # --- schedulers (kept apart from the model, as diffusers does) ----------------------------------
    def train_scheduler(self):
        from monai.networks.schedulers import DDPMScheduler

        return DDPMScheduler(
            num_train_timesteps=int(self.settings["num_train_timesteps"]),
            schedule=self.settings["schedule"],
            clip_sample=False,
            prediction_type=self.settings["prediction_type"],
        )

    def sample_scheduler(self):
        from monai.networks.schedulers import DDIMScheduler

        scheduler = DDIMScheduler(
            num_train_timesteps=int(self.settings["num_train_timesteps"]),
            schedule=self.settings["schedule"],
            clip_sample=False,
            prediction_type=self.settings["prediction_type"],
        )
        scheduler.set_timesteps(int(self.settings["inference_steps"]), device=self.device)
        return scheduler

    def state_dict(self) -> dict:
        return self.net.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state)

    # --- losses ------------------------------------------------------------------------------------
    def losses(self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor, scheduler) -> dict:
        """The four CorrDiff losses on a batch ``(B, ..., Z, Y, X)``."""
        net = self.net
        logits, u = coarse_inputs(prior, self.regions)
        residual = target - prior
        quantized, l_vq = net.vqvae.quantize(net.vqvae.encode(residual))
        l_recon = F.l1_loss(net.vqvae.decode(quantized), residual)
        z0 = quantized.detach()
        noise = torch.randn_like(z0)
        t = torch.randint(0, scheduler.num_train_timesteps, (z0.shape[0],), device=z0.device)
        z_t = scheduler.add_noise(z0, noise, t)
        cond = net.condition(image, prior, logits, u)
        output = net.denoiser(torch.cat([z_t, cond], 1), t)
        alpha = scheduler.alphas_cumprod.to(z0.device)[t].view(-1, *([1] * (z0.ndim - 1)))
        if self.settings["prediction_type"] == "epsilon":
            l_diff = F.mse_loss(output, noise)
            z0_hat = ((z_t - (1 - alpha).sqrt() * output) / alpha.sqrt()).clamp(-5, 5)
        else:
            l_diff = F.mse_loss(output, z0)
            z0_hat = output
        final_logits = net.correct(prior, logits, u, net.vqvae.decode(z0_hat), self.regions)
        weight = alpha.flatten()
        if self.regions:
            per_sample = (
                F.binary_cross_entropy_with_logits(final_logits, target, reduction="none").flatten(1).mean(1)
            )
            probs = torch.sigmoid(final_logits)
        else:
            per_sample = F.cross_entropy(final_logits, target.argmax(1), reduction="none").flatten(1).mean(1)
            probs = torch.softmax(final_logits, 1)
        l_seg = (weight * per_sample).mean() / weight.mean().clamp_min(1e-3) + _dice_loss(probs, target)
        total = 1.0 * l_diff + 1.0 * l_recon + 0.25 * l_vq + 1.0 * l_seg
        return {"loss": total, "diff": l_diff, "recon": l_recon, "vq": l_vq, "seg": l_seg}

    # --- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _refine_window(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n_in = self.signature.num_input_channels
        image, prior = window[:, :n_in], window[:, n_in:]
        logits, u = coarse_inputs(prior, self.regions)
        cond = self.net.condition(image, prior, logits, u)
        scheduler = self.sample_scheduler()
        factor = 2 ** int(self.settings["levels"])
        latent_shape = (
            window.shape[0],
            int(self.settings["latent_channels"]),
            *[s // factor for s in window.shape[2:]],
        )
        outputs = []
        for _ in range(int(self.settings["num_samples"])):
            z = torch.randn(latent_shape, generator=generator, device="cpu").to(self.device)
            for t in scheduler.timesteps:
                timestep = torch.full((z.shape[0],), int(t), device=self.device, dtype=torch.long)
                eps = self.net.denoiser(torch.cat([z, cond], 1), timestep)
                z, _ = scheduler.step(eps, int(t), z)
            final = self.net.correct(prior, logits, u, self.net.vqvae.decode(z), self.regions)
            outputs.append(torch.sigmoid(final) if self.regions else torch.softmax(final, 1))
        return torch.stack(outputs).mean(0)

    def refine(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """Refined probabilities ``(C, Z, Y, X)`` (on the region of interest of
        :mod:`nnunet_diffrefine.refine.roi` when ``roi`` is set; the prior elsewhere)."""
        return refine_in_roi(
            lambda p, i: (self._refine_volume(p, i, seed),),
            prior,
            image,
            self.regions,
            self.settings,
            ("prior",),
        )[0]

    def _refine_volume(self, prior: np.ndarray, image: np.ndarray, seed: int) -> np.ndarray:
        from monai.inferers import sliding_window_inference

        self.net.eval()
        generator = torch.Generator().manual_seed(int(seed))
        inputs = torch.from_numpy(np.concatenate([image, prior], 0)[None].astype(np.float32)).to(self.device)
        roi = [int(p) for p in self.settings["patch_size"]]
        out = sliding_window_inference(
            inputs,
            roi,
            1,
            lambda w: self._refine_window(w, generator),
            overlap=0.25,
            mode="gaussian",
            padding_mode="constant",
        )
        return out[0].float().cpu().numpy()

    # --- training ----------------------------------------------------------------------------------
    def _sample_batch(
        self, cases: list[TrainingCase], rng: np.random.Generator, batch_size: int, patch
    ) -> tuple:
        images, priors, targets = [], [], []
        for _ in range(batch_size):
            case = cases[rng.integers(len(cases))]
            shape = np.array(case.image.shape[1:])
            need = np.array(patch)
            pad = np.maximum(need - shape, 0)
            arrays = [case.image, case.prior, case.target]
            if pad.any():
                widths = [(0, 0)] + [(int(p // 2), int(p - p // 2)) for p in pad]
                arrays = [np.pad(a, widths) for a in arrays]
                shape = np.array(arrays[0].shape[1:])
            if rng.random() < 2 / 3:
                fg = np.argwhere((arrays[2].max(0) > 0.5) | (arrays[1].max(0) > 0.5))
                center = fg[rng.integers(len(fg))] if len(fg) else rng.integers(0, shape)
                start = np.clip(center - need // 2, 0, shape - need)
            else:
                start = rng.integers(0, shape - need + 1)
            sl = (slice(None), *[slice(int(s), int(s + n)) for s, n in zip(start, need)])
            crop = [a[sl] for a in arrays]
            for axis in range(3):
                if rng.random() < 0.5:
                    crop = [np.flip(a, axis + 1) for a in crop]
            images.append(crop[0]), priors.append(crop[1]), targets.append(crop[2])

        def stack(a):
            return torch.from_numpy(np.ascontiguousarray(np.stack(a)).astype(np.float32)).to(self.device)

        return stack(images), stack(priors), stack(targets)

    def validate(self, cases: list[TrainingCase]) -> tuple[float, float]:
        """(mean Dice of the refined masks, mean Dice of the priors) over ``cases`` (threshold 0.5)."""
        refined, prior = [], []
        for i, case in enumerate(cases):
            out = self.refine(case.prior, case.image, seed=i)
            if self.regions:
                refined.append(_mean_dice(out > 0.5, case.target > 0.5))
                prior.append(_mean_dice(case.prior > 0.5, case.target > 0.5))
            else:
                refined.append(_mean_dice(_foreground_onehot(out), _foreground_onehot(case.target)))
                prior.append(_mean_dice(_foreground_onehot(case.prior), _foreground_onehot(case.target)))
        return float(np.mean(refined)), float(np.mean(prior))

    def fit(self, train, val, folder: Path, settings: RefinerSettings, log=print) -> dict:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.settings["patch_size"] = [int(p) for p in settings.patch_size]
        torch.manual_seed(settings.seed)
        rng = np.random.default_rng(settings.seed)
        optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        scheduler = self.train_scheduler()
        history: dict = {"epochs": [], "best_epoch": -1, "best_dice": -1.0, "prior_dice": None}
        start_epoch, best_state, stale = 0, None, 0
        latest = folder / LATEST_FILE
        if latest.is_file():  # resume an interrupted training
            checkpoint = torch.load(latest, map_location=self.device, weights_only=False)
            self.net.load_state_dict(checkpoint["net"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            history, start_epoch, stale = checkpoint["history"], checkpoint["epoch"] + 1, checkpoint["stale"]
            best_state = checkpoint["best_state"]
            rng = np.random.default_rng([settings.seed, start_epoch])
            log(
                f"CorrDiff: resuming at epoch {start_epoch} (best validation Dice {history['best_dice']:.4f})"
            )
        for epoch in range(start_epoch, settings.max_epochs):
            if stale >= settings.patience:
                break
            self.net.train()
            started = time.perf_counter()
            totals: dict[str, float] = {}
            for _ in range(settings.iterations_per_epoch):
                image, prior, target = self._sample_batch(
                    train, rng, settings.batch_size, settings.patch_size
                )
                losses = self.losses(image, prior, target, scheduler)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), settings.grad_clip)
                optimizer.step()
                for k, v in losses.items():
                    totals[k] = totals.get(k, 0.0) + float(v.detach()) / settings.iterations_per_epoch
            dice, prior_dice = self.validate(val)
            history["prior_dice"] = prior_dice
            improved = dice > history["best_dice"]
            if improved:
                history["best_dice"], history["best_epoch"], stale = dice, epoch, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                stale += 1
            entry = {
                "epoch": epoch,
                **{k: round(v, 5) for k, v in totals.items()},
                "val_dice": round(dice, 5),
                "prior_dice": round(prior_dice, 5),
                "seconds": round(time.perf_counter() - started, 2),
            }
            history["epochs"].append(entry)
            log(
                f"CorrDiff epoch {epoch}: loss {totals['loss']:.4f} (diff {totals['diff']:.4f}, recon {totals['recon']:.4f}, "
                f"vq {totals['vq']:.4f}, seg {totals['seg']:.4f}), validation Dice {dice:.4f} (prior {prior_dice:.4f})"
                f"{' *' if improved else ''}"
            )
            with atomic_output_file(latest) as tmp:
                torch.save(
                    {
                        "net": self.net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                        "epoch": epoch,
                        "stale": stale,
                        "best_state": best_state,
                    },
                    tmp,
                )
        if best_state is not None:
            self.net.load_state_dict(best_state)
        write_json(json.loads(json.dumps(history)), folder / "training_history.json")
        return history
