"""Pretrained Swin-UNETR encoders for ``SwinUNETRTrainer`` (seed 000 fine-tunes from pretrained weights).

Two ways in:

- ``nnUNetv2_train ... -tr SwinUNETRTrainer -pretrained_weights CHECKPOINT.pth``: nnU-Net's own loader,
  for a checkpoint of this trainer (e.g. trained on BraTS); nnU-Net requires every tensor to match.
- ``DIFFREFINE_SWIN_PRETRAINED=/path/model_swinvit.pt``: MONAI's self-supervised Swin-UNETR format (or
  an nnU-Net checkpoint, or a plain state dict) loaded into the encoder by name and shape after the
  network is built; the number of matched tensors is written to the training log, and a missing or
  incompatible file stops the training with one clear message.
"""

from __future__ import annotations

import os

PRETRAINED_VARIABLE = "DIFFREFINE_SWIN_PRETRAINED"


class SwinPretrainedMixin:
    """Loads ``$DIFFREFINE_SWIN_PRETRAINED`` into the freshly built network during ``initialize``."""

    def initialize(self) -> None:
        super().initialize()  # type: ignore[misc]
        path = os.environ.get(PRETRAINED_VARIABLE)
        if not path:
            return
        from nnunet_diffrefine.networks.monai_nets import load_swin_encoder_weights

        counts = load_swin_encoder_weights(self.network, path)  # type: ignore[attr-defined]
        self.print_to_log_file(  # type: ignore[attr-defined]
            f"loaded pretrained Swin-UNETR weights from {path}: {counts['matched']} tensors matched "
            f"({counts['total_in_file']} in the file, {counts['total_in_model']} in the network)",
            also_print_to_console=True,
        )
