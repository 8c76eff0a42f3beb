"""nnunet-diffrefine: an nnU-Net v2 extension for multimodal brain tumor MRI.

Sub-packages, one per stage of the pipeline:

- ``data``: BraTS conventions, the BraTS -> nnU-Net converter and the synthetic phantoms;
- ``cli``: the ``nnunet-diffrefine`` command and its subcommands;
- ``utils``: small shared helpers (atomic writes, paths).

Heavy dependencies (torch, nnunetv2, SimpleITK) are imported lazily inside functions so that
``import nnunet_diffrefine`` and ``nnunet-diffrefine --help`` stay fast.
"""

__version__ = "0.1.0"
