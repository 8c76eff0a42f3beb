"""Losses of Ke et al.'s diffusion refiners: DiceCE on logits and the boundary-weighted MSE of eq. (9).

- :func:`dice_ce`: region-based outputs use sigmoid Dice + BCE per channel, label-based outputs softmax
  Dice over the foreground classes + cross-entropy. The Dice is Ke et al.'s soft Dice (eq. 2, squared
  denominator), via :func:`nnunet_diffrefine.losses.segmentation.dsc_pp_bce`, computed over the whole batch
  (batch Dice: 2D slices and random patches often hold no tumor, where a per-sample Dice is 0 or 1).
- :func:`edge_weights`: ``w(x) = edge_weight`` (3) where the 6-neighbourhood of ``x`` holds another
  class, 1 elsewhere. "Class" is the vector of target channels at ``x`` (the region memberships, or
  the one-hot label), so a voxel is an edge voxel when any channel differs from any of its 6 face
  neighbours; both sides of a boundary count, the volume border does not.
- :func:`boundary_mse`: ``mean_x w(x) sum_c (probs_c(x) - y_c(x))^2`` (sum over channels, mean over
  voxels and batch).
- :func:`error_weights` and :func:`weighted_dice_ce`: the DiceCE weighted towards where the *prior* is
  likely wrong (a band around its boundary, its uncertain voxels), for the conditioned refiners: most of
  a prior is right, and an unweighted loss is dominated by voxels that need no correction.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn


@functools.lru_cache(maxsize=2)
def _loss(regions: bool) -> nn.Module:
    from nnunet_diffrefine.losses.segmentation import dsc_pp_bce

    return dsc_pp_bce(regions, batch_dice=True)


def dice_ce(logits: torch.Tensor, target: torch.Tensor, regions: bool) -> torch.Tensor:
    """Dice + (binary) cross-entropy of ``logits`` ``(B, C, ...)`` against one-hot/region ``target`` ``(B, C, ...)``."""
    if regions:
        return _loss(True)(logits, target)
    return _loss(False)(logits, target.argmax(1, keepdim=True))


def output_probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Sigmoid (regions) or softmax over the channels (labels) of ``logits`` ``(B, C, ...)``."""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, 1)


def edge_weights(target: torch.Tensor, edge_weight: float = 3.0) -> torch.Tensor:
    """``(B, 1, ...)`` weights: ``edge_weight`` on class edges of ``target`` ``(B, C, ...)`` (6-/4-neighbourhood), else 1."""
    labels = target > 0.5
    edge = torch.zeros_like(labels[:, :1])
    for axis in range(2, target.ndim):
        n = target.shape[axis]
        if n < 2:
            continue
        differs = (labels.narrow(axis, 1, n - 1) != labels.narrow(axis, 0, n - 1)).any(1, keepdim=True)
        edge.narrow(axis, 1, n - 1).logical_or_(differs)
        edge.narrow(axis, 0, n - 1).logical_or_(differs)
    return 1.0 + (edge_weight - 1.0) * edge.to(target.dtype)


def boundary_mse(probs: torch.Tensor, target: torch.Tensor, edge_weight: float = 3.0) -> torch.Tensor:
    """``mean_x w(x) ||probs(x) - target(x)||^2`` for ``(B, C, ...)`` tensors (see the module docstring)."""
    squared = (probs - target).pow(2).sum(1, keepdim=True)
    return (edge_weights(target, edge_weight) * squared).mean()


def _pool(x: torch.Tensor, size: int) -> torch.Tensor:
    pool = torch.nn.functional.max_pool3d if x.ndim == 5 else torch.nn.functional.max_pool2d
    return pool(x, size, stride=1, padding=size // 2)


def error_weights(
    prior: torch.Tensor, regions: bool, boundary_weight: float, uncertainty_weight: float, band: int = 2
) -> torch.Tensor:
    """``(B, 1, ...)`` loss weights where the prior is likely wrong: ``1 + boundary_weight`` within
    ``band`` voxels of the boundary of the prior's masks (regions at 0.5, or the argmax classes), plus
    ``uncertainty_weight`` x the prior's normalised entropy (binary per region, mean over the regions;
    categorical / ln C for softmax), from ``prior`` ``(B, C, ...)`` probabilities (no gradient)."""
    with torch.no_grad():
        p = prior.clamp(1e-6, 1 - 1e-6)
        if regions:
            masks = (prior > 0.5).to(prior.dtype)
            entropy = (-(p * torch.log(p) + (1 - p) * torch.log1p(-p)) / math.log(2)).mean(1, keepdim=True)
        else:
            masks = (
                torch.nn.functional.one_hot(prior.argmax(1), prior.shape[1]).movedim(-1, 1).to(prior.dtype)
            )
            entropy = -(p * torch.log(p)).sum(1, keepdim=True) / math.log(max(2, prior.shape[1]))
        size = 2 * band + 1
        edge = (_pool(masks, size) - (-_pool(-masks, size))).amax(1, keepdim=True)  # dilation - erosion
        return 1.0 + boundary_weight * edge + uncertainty_weight * entropy


def weighted_dice_ce(
    logits: torch.Tensor, target: torch.Tensor, regions: bool, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`dice_ce` with per-voxel ``weights`` ``(B, 1, ...)`` (None: :func:`dice_ce` itself): the
    (binary) cross-entropy averaged with the weights, and the batch soft Dice (squared denominator) with
    every sum weighted, over the region channels (labels: the foreground classes)."""
    if weights is None:
        return dice_ce(logits, target, regions)
    total = weights.sum()
    probs = output_probabilities(logits, regions)
    if regions:
        ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        ce = (weights * ce).sum() / (total * logits.shape[1])
        channels = slice(None)
    else:
        ce = torch.nn.functional.cross_entropy(logits, target.argmax(1), reduction="none")
        ce = (weights[:, 0] * ce).sum() / total
        channels = slice(1, None)
    p, y = probs[:, channels], target[:, channels]
    axes = [0, *range(2, logits.ndim)]
    dice = (2 * (weights * p * y).sum(axes) + 1e-5) / (
        (weights * p * p).sum(axes) + (weights * y * y).sum(axes) + 1e-5
    )
    return ce + (1 - dice).mean()
