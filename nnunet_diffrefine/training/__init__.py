"""Training inside nnU-Net: the shared trainer base, losses, schedules and plan adjustments.

The trainer classes users name with ``-tr`` live in the top-level ``trainers/`` folder and are thin
subclasses of :class:`nnunet_diffrefine.training.base.DiffRefineTrainerBase`.
"""
