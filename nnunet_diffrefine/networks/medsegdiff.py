"""MedSegDiff's 2D network (Wu et al. 2023, as used by Ke et al. §3.4), written in plain torch.

Two branches over one axial slice:

- the **highway** ``G``: a small U-Net (conv blocks, ``channels`` (16, 32, 64) by default) mapping the
  condition (image, and the prior when conditioned) to mask logits ``c`` ``(B, C, H, W)``; its encoder
  features ``g_k`` at the three scales are the conditioning of the denoiser;
- the **denoiser**: a U-Net over the noisy mask ``s_t`` ``(B, C, H, W)`` only, with a sinusoidal
  timestep embedding (an MLP, added in every residual block). At encoder scale ``k`` the highway's
  feature joins the denoiser's after an :class:`~nnunet_diffrefine.networks.ffparser.FFParser`:
  ``h_k <- h_k + FFParser_k(g_k)``. It predicts the noise ``eps`` (its last convolution starts at 0).

MONAI's ``DiffusionModelUNet`` offers no way to add features inside its encoder, hence this small net.
``H`` and ``W`` must be multiples of ``2 ** (levels - 1)`` (4 for the default three levels); the FF-Parser maps are made for the
training slice size ``size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_diffrefine.networks.ffparser import FFParser

GROUPS = 8


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer timesteps ``(B,)`` (Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by group norm and SiLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(GROUPS, cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.GroupNorm(GROUPS, cout),
            nn.SiLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResBlock(nn.Module):
    """Residual block with the timestep embedding added between its two convolutions."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(GROUPS, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(GROUPS, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class HighwayUNet(nn.Module):
    """``(B, in, H, W)`` -> (logits ``(B, out, H, W)``, encoder features ``[(B, ch_k, H / 2^k, W / 2^k)]``)."""

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        cin = in_channels
        for k, ch in enumerate(channels):
            self.encoders.append(ConvBlock(cin, ch))
            if k < len(channels) - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            cin = ch
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in range(len(channels) - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(channels[k + 1], channels[k], 2, stride=2))
            self.decoders.append(ConvBlock(2 * channels[k], channels[k]))
        self.head = nn.Conv2d(channels[0], out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # calibration logits start at 0: the conditioned refiner's
        nn.init.zeros_(self.head.bias)  # offset from the prior's logits (identity start)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for k, encoder in enumerate(self.encoders):
            x = encoder(x)
            features.append(x)
            if k < len(self.downs):
                x = self.downs[k](x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(features[:-1])):
            x = decoder(torch.cat([up(x), skip], 1))
        return self.head(x), features


class MedSegDiffNet(nn.Module):
    """Highway U-Net + FF-Parser-conditioned noise predictor (see the module docstring).

    ``cond_channels``: channels of the condition (image, plus prior); ``num_outputs``: mask channels
    ``C``; ``size``: the training slice ``(H, W)``; ``channels``: per level (multiples of 8).
    """

    def __init__(
        self,
        cond_channels: int,
        num_outputs: int,
        size: Sequence[int],
        channels: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        h, w = (int(s) for s in size)
        emb_dim = 4 * channels[0]
        self.emb_base = channels[0]
        self.highway = HighwayUNet(cond_channels, num_outputs, channels)
        self.time_mlp = nn.Sequential(nn.Linear(channels[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(num_outputs, channels[0], 3, padding=1)
        self.encoders = nn.ModuleList()
        self.parsers = nn.ModuleList()
        self.downs = nn.ModuleList()
        cin = channels[0]
        for k, ch in enumerate(channels):
            self.encoders.append(ResBlock(cin, ch, emb_dim))
            self.parsers.append(FFParser(ch, (h // 2**k, w // 2**k)))
            if k < len(channels) - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            cin = ch
        self.middle = ResBlock(channels[-1], channels[-1], emb_dim)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in range(len(channels) - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(channels[k + 1], channels[k], 2, stride=2))
            self.decoders.append(ResBlock(2 * channels[k], channels[k], emb_dim))
        self.out = nn.Sequential(
            nn.GroupNorm(GROUPS, channels[0]), nn.SiLU(), nn.Conv2d(channels[0], num_outputs, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def condition(self, cond: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The highway: calibration logits ``c`` and its multi-scale features, from ``cond`` ``(B, in, H, W)``."""
        return self.highway(cond)

    def denoise(self, s_t: torch.Tensor, t: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Predicted noise ``(B, C, H, W)`` for ``s_t`` at timesteps ``t`` ``(B,)`` given the highway features."""
        emb = self.time_mlp(timestep_embedding(t, self.emb_base))
        x = self.stem(s_t)
        skips = []
        for k, (encoder, parser) in enumerate(zip(self.encoders, self.parsers)):
            x = encoder(x, emb) + parser(features[k])
            skips.append(x)
            if k < len(self.downs):
                x = self.downs[k](x)
        x = self.middle(x, emb)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips[:-1])):
            x = decoder(torch.cat([up(x), skip], 1), emb)
        return self.out(x)

    def forward(
        self, s_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eps^, c)``: predicted noise and calibration logits, both ``(B, C, H, W)``."""
        logits, features = self.condition(cond)
        return self.denoise(s_t, t, features), logits
