"""Training inside nnU-Net: the shared trainer base, the trainers' short schedules, plan adjustments
and the refiner stage of the ``<Network><Refiner>Trainer`` classes.

The trainer classes users name with ``-tr`` live in the top-level ``trainers/`` folder and are thin
subclasses of :class:`nnunet_diffrefine.training.base.DiffRefineTrainerBase`; their losses live in
:mod:`nnunet_diffrefine.losses`.
"""
