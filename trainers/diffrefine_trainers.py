"""Trainers for ``nnUNetv2_train DATASET 3d_fullres FOLD -tr <Trainer>`` (found through nnUNet_extTrainer).

Thin classes: the network, the loss and the plans adjustments live in ``nnunet_diffrefine.training``.

- ``MedNeXtTrainer``: MedNeXt-B with 3D GRN (CoMNeT), DSC++ + BCE, deep supervision.
- ``SwinUNETRTrainer``: MONAI Swin-UNETR, soft Dice; patch sides rounded up to multiples of 32;
  pretrained encoder weights from ``-pretrained_weights`` (nnU-Net checkpoint) or
  ``DIFFREFINE_SWIN_PRETRAINED`` (MONAI self-supervised format).
- ``ResUNetTrainer``: MONAI residual U-Net (Ke et al.'s baseline), soft Dice.
- ``SegResNetTrainer``: MONAI SegResNet (CoMNeT's baseline), DSC++ + BCE as CoMNeT trains its baselines.
- ``nnUNetTrainerCustomSchedule``: stock nnU-Net whose length follows the ``DIFFREFINE_*`` variables.
- ``MedNeXtCorrDiffTrainer``: MedNeXt, then CorrDiff on its out-of-fold probabilities (CoMNeT).
- ``SwinUNETRDDPMTrainer`` / ``SwinUNETRDDPMScratchTrainer``: Swin-UNETR, then Ke et al.'s 3D DDPM
  refiner conditioned on its out-of-fold probabilities / the unconditional baseline.
- ``SwinUNETRMedSegDiffTrainer`` / ``SwinUNETRMedSegDiffScratchTrainer``: Swin-UNETR, then MedSegDiff
  conditioned on its out-of-fold probabilities / the unconditional baseline.

nnU-Net builds every trainer with a fixed constructor, so settings reach these classes only through
the environment: the short schedules of the base networks (``DIFFREFINE_NUM_EPOCHS``,
``DIFFREFINE_ITERS_PER_EPOCH``, ``DIFFREFINE_VAL_ITERS_PER_EPOCH``, ``DIFFREFINE_WARMUP_EPOCHS``;
:mod:`nnunet_diffrefine.training.schedule`) and the refiner stage's settings
(``DIFFREFINE_REFINER_PRESET``, ``_EPOCHS``, ``_ITERS``, ``_PATIENCE``, ``_LR``, ``_BATCH``, ``_STEPS``;
:mod:`nnunet_diffrefine.training.refiner_stage`). Unset, the papers' settings apply.
"""

from nnunet_diffrefine.losses.segmentation import dsc_pp_bce, soft_dice
from nnunet_diffrefine.training.base import DiffRefineTrainerBase, nnUNetTrainerCustomSchedule
from nnunet_diffrefine.training.refiner_stage import RefinerStageMixin
from nnunet_diffrefine.training.swin import SwinPretrainedMixin

__all__ = [
    "MedNeXtTrainer",
    "SwinUNETRTrainer",
    "ResUNetTrainer",
    "SegResNetTrainer",
    "nnUNetTrainerCustomSchedule",
    "MedNeXtCorrDiffTrainer",
    "SwinUNETRDDPMTrainer",
    "SwinUNETRDDPMScratchTrainer",
    "SwinUNETRMedSegDiffTrainer",
    "SwinUNETRMedSegDiffScratchTrainer",
]


class MedNeXtTrainer(DiffRefineTrainerBase):
    architecture_key = "mednext"

    def make_loss(self, regions, batch_dice):
        return dsc_pp_bce(regions, batch_dice)


class SwinUNETRTrainer(SwinPretrainedMixin, DiffRefineTrainerBase):
    architecture_key = "swinunetr"

    def make_loss(self, regions, batch_dice):
        return soft_dice(regions, batch_dice)


class ResUNetTrainer(DiffRefineTrainerBase):
    architecture_key = "resunet"

    def make_loss(self, regions, batch_dice):
        return soft_dice(regions, batch_dice)


class SegResNetTrainer(DiffRefineTrainerBase):
    architecture_key = "segresnet"

    def make_loss(self, regions, batch_dice):
        return dsc_pp_bce(regions, batch_dice)


class MedNeXtCorrDiffTrainer(RefinerStageMixin, MedNeXtTrainer):
    """CoMNeT: MedNeXt, then CorrDiff trained on MedNeXt's out-of-fold probabilities (one nnUNetv2_train call)."""

    refiner_name = "corrdiff"


class SwinUNETRDDPMTrainer(RefinerStageMixin, SwinUNETRTrainer):
    """Ke et al.: Swin-UNETR, then the 3D DDPM refiner conditioned on its out-of-fold probabilities."""

    refiner_name = "ddpm"


class SwinUNETRDDPMScratchTrainer(RefinerStageMixin, SwinUNETRTrainer):
    """Ke et al.'s "DDPM (scratch)" row: the unconditional DDPM (it never sees the Swin-UNETR prior)."""

    refiner_name = "ddpm_scratch"


class SwinUNETRMedSegDiffTrainer(RefinerStageMixin, SwinUNETRTrainer):
    """Ke et al.: Swin-UNETR, then MedSegDiff conditioned on its out-of-fold probabilities."""

    refiner_name = "medsegdiff"


class SwinUNETRMedSegDiffScratchTrainer(RefinerStageMixin, SwinUNETRTrainer):
    """Ke et al.'s "MedSegDiff (scratch)" row: MedSegDiff from the image alone."""

    refiner_name = "medsegdiff_scratch"
