"""The deterministic control refiner: the conditioned DDPM's network and loss without the diffusion.

A gain can be credited to diffusion only next to a deterministic refiner of the same inputs and size.
This one is the conditioned 3D DDPM (:mod:`.ddpm`) with the noisy label map and the timestep taken away:
the same MONAI ``DiffusionModelUNet`` (``channels`` (8, 16, 32, 32), called at timestep 0 always), the
same inputs but ``Y_t`` (the MRI and ``2 p - 1``: ``I + C`` channels instead of ``I + 2C``, so a few
hundred parameters fewer in the first convolution), the same identity start (logits as an offset from
the prior's, the output convolution at zero: :mod:`nnunet_diffrefine.utils.logit_space`), the same loss
(DiceCE + 0.1 x the edge-weighted MSE, eq. 9 of the DDPM refiner), patches, optimiser, region of
interest and sliding window; one forward pass per window, no noise, so every sample is the same and the
uncertainty map is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nnunet_diffrefine.losses.diffusion import boundary_mse, output_probabilities, weighted_dice_ce
from nnunet_diffrefine.refine.ddpm import denoiser_unet
from nnunet_diffrefine.refine.settings import ConditionedSettings, setting
from nnunet_diffrefine.refine.volumetric import VolumetricDiffusionRefiner, loss_weights
from nnunet_diffrefine.utils.logit_space import prior_logits, refined_probabilities


@dataclass(frozen=True)
class ControlSettings(ConditionedSettings):
    """The control's settings: the conditioned DDPM's, less those of the diffusion."""

    max_epochs: int = setting(1000)
    patience: int = setting(150)
    patch_size: tuple[int, int, int] | None = setting((96, 96, 96))
    inference_steps: int = setting(1, "unused: one forward pass, no sampling steps", minimum=1)
    channels: tuple[int, ...] = setting((8, 16, 32, 32), "U-Net channels per level (the DDPM's)")
    edge_weight: float = setting(3.0, "weight of class-edge voxels in the MSE term", minimum=1)
    mse_weight: float = setting(0.1, "weight of the edge-weighted MSE term", minimum=0)

    PRESETS = {"cpu": {"learning_rate": 2e-3}, "tiny": {"channels": (8, 16, 16)}}


class ControlRefiner(VolumetricDiffusionRefiner):
    """A deterministic U-Net of the DDPM refiner's size on the prior and the MRI (see the module docstring)."""

    name = "control"
    label = "Control (deterministic U-Net)"
    settings_class = ControlSettings

    def build(self) -> None:
        c, s = self.signature.num_outputs, self.settings
        self.net = denoiser_unet(self.signature.num_input_channels + c, c, s.channels).to(self.device)

    @classmethod
    def patch_multiple_of(cls, settings: ControlSettings) -> int:
        return 2 ** (len(settings.channels) - 1)

    def logits(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Refined logits ``(B, C, ...)``: the prior's plus the network's offset (0 untrained)."""
        t = torch.zeros(image.shape[0], dtype=torch.long, device=image.device)
        return prior_logits(prior, self.regions) + self.net(torch.cat([image, 2 * prior - 1], 1), t)

    def losses(
        self, image: torch.Tensor, prior: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The DDPM refiner's eq. (9) on one forward pass, batch ``(B, ..., Z, Y, X)``."""
        logits = self.logits(image, prior)
        seg = weighted_dice_ce(logits, target, self.regions, loss_weights(self, prior))
        mse = boundary_mse(output_probabilities(logits, self.regions), target, self.settings.edge_weight)
        return {"loss": seg + self.settings.mse_weight * mse, "dice_ce": seg, "boundary_mse": mse}

    def sample(self, image: torch.Tensor, prior: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Refined probabilities ``(B, C, ...)`` (``generator`` unused: deterministic)."""
        return refined_probabilities(
            prior, self.logits(image, prior), prior_logits(prior, self.regions), self.regions
        )
