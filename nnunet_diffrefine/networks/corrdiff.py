"""CorrDiff's trainable parts (Evans et al., §3.2): the residual VQ-VAE, the conditioning encoder, the
latent denoiser and the correction gate, built from MONAI blocks.

The choices the paper leaves open (sizes, the gate formula, the correction in probability space)
are listed in :mod:`nnunet_diffrefine.refine.corrdiff`, which trains and samples this network.
"""

from __future__ import annotations

import torch
from torch import nn

from nnunet_diffrefine.utils.logit_space import clipped_logits


class CorrDiffNet(nn.Module):
    """Residual VQ-VAE, conditioning encoder, latent denoiser and gate.

    Args:
        in_channels: MRI channels ``I``.
        num_outputs: probability channels ``C`` (sigmoid regions, or softmax classes with background).
        width: channel multiplier of every part.
        latent_channels: embedding channels of the VQ-VAE latent.
        num_embeddings: codebook entries (EMA updates).
        levels: stride-2 levels of the VQ-VAE and the conditioning encoder (latent = patch / 2**levels).
        denoiser_levels: levels of MONAI's ``DiffusionModelUNet`` on the latent grid.

    Spatial sizes must be multiples of ``2 ** (levels + denoiser_levels - 1)``. The VQ-VAE's
    quantizer returns the raw commitment term ``||z_e - sg(q)||^2`` (``commitment_cost`` = 1): the
    loss weight (``lambda_vq``) is applied once, by the refiner.
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
            commitment_cost=1.0,
            ddp_sync=False,
        )
        # identity start: the decoder's last (transposed) convolution starts at zero, so an untrained
        # network decodes every latent into the residual 0 and corrects nothing
        last = [m for m in self.vqvae.decoder.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
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
        """Conditioning features on the latent grid from ``[MRI, p, l, u]`` ``(B, I + 2C + 1, ...)``."""
        return self.cond_encoder(torch.cat([image, prior, logits, u], 1))

    def denoise(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The denoiser's output (clean latent or noise) for the noisy latent ``z_t`` at steps ``t`` ``(B,)``."""
        return self.denoiser(torch.cat([z_t, cond], 1), t)

    def correct(
        self,
        prior: torch.Tensor,
        logits: torch.Tensor,
        u: torch.Tensor,
        residual: torch.Tensor,
        regions: bool,
    ) -> torch.Tensor:
        """Final logits ``l + g * dl`` from a decoded residual ``r^`` (all ``(B, C, ...)``); ``l`` must be
        :func:`~nnunet_diffrefine.utils.logit_space.prior_logits` of ``prior`` (the same clip), so that
        ``r^ = 0`` gives ``dl = 0``."""
        target_logits = clipped_logits(prior + residual, regions)
        gate = torch.sigmoid(self.gate(torch.cat([prior, u, residual.abs()], 1)))
        return logits + gate * (target_logits - logits)
