"""Pretrained Swin-UNETR encoders for ``SwinUNETRTrainer`` (Ke et al. fine-tunes from pretrained weights).

Two ways in:

- ``nnUNetv2_train ... -tr SwinUNETRTrainer -pretrained_weights CHECKPOINT.pth``: nnU-Net's own loader,
  for a checkpoint of this trainer (e.g. trained on BraTS); nnU-Net requires every tensor to match.
- ``DIFFREFINE_SWIN_PRETRAINED=/path/model_swinvit.pt``: MONAI's self-supervised Swin-UNETR format (or
  an nnU-Net checkpoint, or a plain state dict) loaded into the encoder by name and shape after the
  network is built; the number of matched tensors is written to the training log, and a missing or
  incompatible file stops the training with one clear message.
"""

from __future__ import annotations

from nnunet_diffrefine.environment import SWIN_PRETRAINED_VARIABLE as PRETRAINED_VARIABLE
from nnunet_diffrefine.environment import swin_pretrained_weights

__all__ = ["PRETRAINED_VARIABLE", "SwinPretrainedMixin"]


class SwinPretrainedMixin:
    """Loads ``$DIFFREFINE_SWIN_PRETRAINED`` into the freshly built network during ``initialize``."""

    def initialize(self) -> None:
        super().initialize()  # type: ignore[misc]
        path = swin_pretrained_weights()
        if path is None:
            return
        from nnunet_diffrefine.networks.monai_nets import load_swin_encoder_weights

        counts = load_swin_encoder_weights(self.network, path)  # type: ignore[attr-defined]
        self.print_to_log_file(  # type: ignore[attr-defined]
            f"loaded pretrained Swin-UNETR weights from {path}: {counts['matched']} tensors matched "
            f"({counts['total_in_file']} in the file, {counts['total_in_model']} in the network)",
            also_print_to_console=True,
        )
