"""FF-Parser (MedSegDiff, Wu et al. 2023): a learnable filter of 2D feature maps in the Fourier domain.

``F^ = IFFT(A * FFT(F))`` with ``FFT`` = ``torch.fft.rfft2`` (orthonormal) over the two spatial axes and
``A`` a complex attention map per channel and frequency, ``(C, H, W // 2 + 1)``, initialised to 1 (the
identity). ``A`` is stored as a real tensor ``(C, H, W // 2 + 1, 2)`` (real and imaginary parts), as in
MedSegDiff's reference code. A feature map of another size than the one ``A`` was made for gets ``A``
resized bilinearly to its frequency grid (the refiners always run at the training size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FFParser(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C, H, W)``: ``irfft2(A * rfft2(x))`` (see the module docstring)."""

    def __init__(self, channels: int, size: Sequence[int]) -> None:
        super().__init__()
        h, w = (int(s) for s in size)
        weight = torch.zeros(channels, h, w // 2 + 1, 2)
        weight[..., 0] = 1.0
        self.weight = nn.Parameter(weight)

    def attention(self, h: int, w: int) -> torch.Tensor:
        """The complex map ``A`` ``(C, h, w // 2 + 1)`` for an ``h x w`` feature map."""
        weight = self.weight
        if weight.shape[1:3] != (h, w // 2 + 1):
            weight = F.interpolate(
                weight.permute(3, 0, 1, 2), size=(h, w // 2 + 1), mode="bilinear", align_corners=True
            ).permute(1, 2, 3, 0)
        return torch.view_as_complex(weight.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")
        return torch.fft.irfft2(spectrum * self.attention(h, w), s=(h, w), norm="ortho").to(x.dtype)
