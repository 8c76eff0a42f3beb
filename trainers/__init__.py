"""The folder ``nnUNet_extTrainer`` points at (see ``nnunet-diffrefine env``).

nnU-Net imports every module in this folder as a top-level module while it looks for a trainer
class by name, so modules here must be thin, import cheaply and never fail to import: the
networks, losses and refiners they use live in ``nnunet_diffrefine`` and are imported lazily.
Module names carry the ``diffrefine_`` prefix so they cannot shadow another top-level module.

Installed as the package ``nnunet_diffrefine.trainers`` (editable or wheel).
"""
