"""Segmentation losses of the two papers, built on MONAI's Dice.

- ``dsc_pp_bce``: CoMNeT's MedNeXt loss, DSC++ + BCE. DSC++ replaces the Dice denominator with
  squared terms, ``1 - (2 sum p y + eps) / (sum p^2 + sum y^2 + eps)`` (MONAI ``DiceLoss`` with
  ``squared_pred=True``), averaged over the region channels. For label-based (softmax) datasets the
  equivalent is DSC++ over the foreground classes + cross-entropy.
- ``soft_dice``: Ke et al.'s soft Dice (eq. 2, the same squared denominator, eps = 1e-5) for the
  residual U-Net and Swin-UNETR, sigmoid per region or softmax over the classes.

Inputs are logits ``(B, C, Z, Y, X)``. Targets are nnU-Net's: region-based ``(B, C, Z, Y, X)`` binary
masks, label-based ``(B, 1, Z, Y, X)`` integer label maps.
"""

from __future__ import annotations

import torch
from torch import nn

SMOOTH = 1e-5


class RegionDiceBCELoss(nn.Module):
    """DSC++ (squared denominator) on sigmoid probabilities + binary cross-entropy on the logits.

    MONAI's ``DiceCELoss`` is not used because it applies a softmax cross-entropy to multi-channel
    sigmoid outputs; the BCE here treats each region channel independently, as region training needs.
    """

    def __init__(self, weight_dice: float = 1.0, weight_bce: float = 1.0, batch_dice: bool = False) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(
            sigmoid=True, squared_pred=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH, batch=batch_dice
        )
        self.bce = nn.BCEWithLogitsLoss()
        self.weight_dice, self.weight_bce = weight_dice, weight_bce

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        return self.weight_dice * self.dice(logits, target) + self.weight_bce * self.bce(logits, target)


class LabelDiceCELoss(nn.Module):
    """DSC++ over the foreground classes of a softmax + cross-entropy (the label-based equivalent)."""

    def __init__(self, weight_dice: float = 1.0, weight_ce: float = 1.0, batch_dice: bool = False) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(
            softmax=True,
            to_onehot_y=True,
            include_background=False,
            squared_pred=True,
            smooth_nr=SMOOTH,
            smooth_dr=SMOOTH,
            batch=batch_dice,
        )
        self.ce = nn.CrossEntropyLoss()
        self.weight_dice, self.weight_ce = weight_dice, weight_ce

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = target[:, 0].long()
        return self.weight_dice * self.dice(logits, target) + self.weight_ce * self.ce(logits, labels)


class SoftDiceLoss(nn.Module):
    """Ke et al.'s soft Dice loss (eq. 2): sigmoid per region channel, or softmax over all classes."""

    def __init__(self, regions: bool, batch_dice: bool = False) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        common = dict(squared_pred=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH, batch=batch_dice)
        if regions:
            self.dice = DiceLoss(sigmoid=True, **common)
        else:  # K classes including background, as the paper's K = 4
            self.dice = DiceLoss(softmax=True, to_onehot_y=True, include_background=True, **common)
        self.regions = regions

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target.to(logits.dtype) if self.regions else target)


def dsc_pp_bce(regions: bool, batch_dice: bool = False) -> nn.Module:
    """CoMNeT's MedNeXt loss for a region-based (``regions=True``) or label-based dataset."""
    return RegionDiceBCELoss(batch_dice=batch_dice) if regions else LabelDiceCELoss(batch_dice=batch_dice)


def soft_dice(regions: bool, batch_dice: bool = False) -> nn.Module:
    """Ke et al.'s soft Dice for the residual U-Net and Swin-UNETR."""
    return SoftDiceLoss(regions=regions, batch_dice=batch_dice)
