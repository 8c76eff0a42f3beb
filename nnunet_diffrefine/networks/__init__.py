"""Networks: for the trainers MedNeXt with 3D GRN, and MONAI's Swin-UNETR, residual U-Net and
SegResNet, each with an nnU-Net plans adapter (``*_from_plans``); for the refiners CorrDiff's network
(:mod:`.corrdiff`) and MedSegDiff's (:mod:`.medsegdiff`).

Importing this sub-package imports torch and MONAI.
"""

from nnunet_diffrefine.networks.mednext import (
    MEDNEXT_SIZES,
    MedNeXt,
    MedNeXtDecoder,
    create_mednext,
    mednext_from_plans,
    upkern_load_weights,
)
from nnunet_diffrefine.networks.monai_nets import (
    NoDeepSupervision,
    load_swin_encoder_weights,
    residual_unet,
    resunet_from_plans,
    segresnet,
    segresnet_from_plans,
    swin_unetr,
    swinunetr_from_plans,
)

__all__ = [
    "MEDNEXT_SIZES",
    "MedNeXt",
    "MedNeXtDecoder",
    "NoDeepSupervision",
    "create_mednext",
    "load_swin_encoder_weights",
    "mednext_from_plans",
    "residual_unet",
    "resunet_from_plans",
    "segresnet",
    "segresnet_from_plans",
    "swin_unetr",
    "swinunetr_from_plans",
    "upkern_load_weights",
]
