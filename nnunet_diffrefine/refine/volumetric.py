"""What the 3D diffusion refiners (CorrDiff, the DDPM) share: training on random 3D patches and
sampling over the region of interest with MONAI's sliding window, ``num_samples`` samples per window.

A subclass implements ``losses(image, prior, target)`` on a batch of patches and
``sample(image, prior, generator)``, one sample of refined probabilities for a batch of windows
(``(B, I, ...)`` and ``(B, C, ...)`` in, ``(B, C, ...)`` out). Each window is sampled with the case's
seeded generator, so a seed gives the same refinement every time.
"""

from __future__ import annotations

import numpy as np
import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.losses.diffusion import error_weights
from nnunet_diffrefine.refine.base import Refiner
from nnunet_diffrefine.refine.patches import sample_patches, sliding_window
from nnunet_diffrefine.refine.roi import refine_in_roi


def loss_weights(refiner: Refiner, prior: torch.Tensor) -> torch.Tensor | None:
    """Per-voxel weights of a conditioned refiner's segmentation loss (:func:`error_weights` with its
    ``boundary_weight`` and ``uncertainty_weight``), or None (unweighted: scratch, or both 0)."""
    s = refiner.settings
    boundary, uncertainty = getattr(s, "boundary_weight", 0.0), getattr(s, "uncertainty_weight", 0.0)
    if not refiner.uses_prior or (boundary == 0 and uncertainty == 0):
        return None
    return error_weights(prior, refiner.regions, boundary, uncertainty)


class VolumetricDiffusionRefiner(Refiner):
    """Base of the 3D patch refiners (see the module docstring)."""

    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, image: torch.Tensor, prior: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def training_losses(self, cases, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        s = self.settings
        perturb = getattr(s, "perturbed_priors", 0.0) if self.uses_prior else 0.0
        arrays = sample_patches(cases, rng, s.batch_size, s.patch_size, self.regions, perturb)
        return self.losses(*[torch.from_numpy(a).to(self.device) for a in arrays])

    @torch.no_grad()
    def _sample_window(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(B, 2C, ...)``: mean and standard deviation of ``num_samples`` refined probability maps."""
        window = window.to(self.device)
        n_in = self.signature.num_input_channels
        image, prior = window[:, :n_in], window[:, n_in:]
        stacked = torch.stack(
            [self.sample(image, prior, generator) for _ in range(self.settings.num_samples)]
        )
        return torch.cat([stacked.mean(0), stacked.std(0, correction=0)], 1).cpu()

    def _refine_volume(
        self, prior: np.ndarray, image: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.settings.patch_size is None:
            raise InputError(
                f"{self.name}: patch_size is not set (train the refiner, or give the inference window)"
            )
        self.net.eval()
        generator = torch.Generator().manual_seed(int(seed))
        inputs = np.concatenate([image, prior], 0).astype(np.float32)[None]
        out = sliding_window(inputs, self.settings.patch_size, lambda w: self._sample_window(w, generator))[0]
        c = self.signature.num_outputs
        return out[:c].float().clamp(0, 1).numpy(), out[c:].float().clamp_min(0).numpy()

    def refine_with_uncertainty(
        self, prior: np.ndarray, image: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Refined probabilities and their standard deviation over ``num_samples``, ``(C, Z, Y, X)`` each
        (on the region of interest when ``roi`` is set: the prior and 0 elsewhere)."""
        outside = ("prior", "zero")
        return refine_in_roi(
            lambda p, i: self._refine_volume(p, i, seed), prior, image, self.regions, self.settings, outside
        )
