"""The prior's logit space, shared by every conditioned refiner so that an untrained one is the identity.

A conditioned refiner works as ``l_final = l + delta`` on the prior's logits ``l`` (:func:`prior_logits`,
with the one clip constant :data:`CLIP` for logits and corrections alike), and its networks' last layer
that makes ``delta`` starts at zero. The clip makes ``sigmoid(l)`` differ from the prior where the
prior is within :data:`CLIP` of 0 or 1, so the refined probabilities are written as
:func:`refined_probabilities` ``= p + s(l + delta) - s(l)``: exactly ``p`` when ``delta`` is 0, and
within :data:`CLIP` of ``s(l + delta)`` (what the training losses see) otherwise.
"""

from __future__ import annotations

import torch

CLIP = 1e-4
"""Probabilities are clipped to ``[CLIP, 1 - CLIP]`` before a logit (|logit| <= 9.2)."""


def probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Sigmoid (regions) or softmax over the channels (labels) of ``logits`` ``(B, C, ...)``."""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, 1)


def clipped_logits(p: torch.Tensor, regions: bool) -> torch.Tensor:
    """``logit(clip(p))`` (regions) or ``log(clip(p))`` (softmax classes), ``(B, C, ...)``."""
    p = p.clamp(CLIP, 1 - CLIP)
    return torch.log(p) - torch.log1p(-p) if regions else torch.log(p)


def prior_logits(prior: torch.Tensor, regions: bool) -> torch.Tensor:
    """The prior's logits ``l`` ``(B, C, ...)`` from its probabilities (nnU-Net exports no logits)."""
    return clipped_logits(prior, regions)


def refined_probabilities(
    prior: torch.Tensor, final_logits: torch.Tensor, base_logits: torch.Tensor, regions: bool
) -> torch.Tensor:
    """``clip(p + s(final) - s(base), 0, 1)`` ``(B, C, ...)``: the prior itself when ``final == base``
    (see the module docstring); label-based outputs are renormalised over the classes."""
    out = (prior + probabilities(final_logits, regions) - probabilities(base_logits, regions)).clamp(0, 1)
    if regions:
        return out
    return out / out.sum(1, keepdim=True).clamp_min(1e-8)
