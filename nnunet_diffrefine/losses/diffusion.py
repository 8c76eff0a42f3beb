"""Losses of seed 000's diffusion refiners: DiceCE on logits and the boundary-weighted MSE of eq. (9).

- :func:`dice_ce`: region-based outputs use sigmoid Dice + BCE per channel, label-based outputs softmax
  Dice over the foreground classes + cross-entropy. The Dice is seed 000's soft Dice (eq. 2, squared
  denominator), via :func:`nnunet_diffrefine.losses.segmentation.dsc_pp_bce`, computed over the whole batch
  (batch Dice: 2D slices and random patches often hold no tumor, where a per-sample Dice is 0 or 1).
- :func:`edge_weights`: ``w(x) = edge_weight`` (3) where the 6-neighbourhood of ``x`` holds another
  class, 1 elsewhere. "Class" is the vector of target channels at ``x`` (the region memberships, or
  the one-hot label), so a voxel is an edge voxel when any channel differs from any of its 6 face
  neighbours; both sides of a boundary count, the volume border does not.
- :func:`boundary_mse`: ``mean_x w(x) sum_c (probs_c(x) - y_c(x))^2`` (sum over channels, mean over
  voxels and batch).
"""

from __future__ import annotations

import functools

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
