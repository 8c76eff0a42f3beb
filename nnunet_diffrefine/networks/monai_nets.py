"""Thin builders around MONAI's Swin-UNETR, residual U-Net and SegResNet, and nnU-Net adapters.

None of these networks has deep supervision. nnU-Net still writes
``network.decoder.deep_supervision = enabled`` (False for ``nnUNetTrainerNoDeepSupervision`` and
this project's trainers, True for the stock ``nnUNetTrainer``), and MONAI's nets have no ``decoder``
attribute, so each builder attaches :class:`NoDeepSupervision` as ``network.decoder``: a module
without parameters or buffers (the state dict keys stay MONAI's) whose ``deep_supervision`` accepts
False and refuses True with a clear message.

``load_swin_encoder_weights`` loads a pretrained Swin-UNETR encoder from a local file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import SegResNet, SwinUNETR, UNet
from torch import nn

from nnunet_diffrefine.errors import InputError

__all__ = [
    "NoDeepSupervision",
    "load_swin_encoder_weights",
    "residual_unet",
    "resunet_from_plans",
    "segresnet",
    "segresnet_from_plans",
    "swin_unetr",
    "swinunetr_from_plans",
]

_NO_DS_HINT = (
    "train it with nnUNetTrainerNoDeepSupervision or one of this project's trainers, "
    "which switch deep supervision off"
)


class NoDeepSupervision(nn.Module):
    """Stand-in ``network.decoder`` for nets without deep supervision (no parameters, no buffers).

    nnU-Net toggles ``network.decoder.deep_supervision`` around its final validation (and sets it back to
    True afterwards, whatever the trainer), so setting it is accepted and has no effect: the network
    always returns one output. Asking for deep supervision when the network is built (the plans adapters'
    ``deep_supervision=True``, as stock ``nnUNetTrainer`` does) is the error.
    """

    def __init__(self, network_name: str) -> None:
        super().__init__()
        self.network_name = network_name

    @property
    def deep_supervision(self) -> bool:
        """Always False."""
        return False

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        pass  # see the class docstring

    def extra_repr(self) -> str:
        return f"{self.network_name}, deep_supervision=False"


def _attach_no_ds_decoder(network: nn.Module) -> nn.Module:
    """Attach :class:`NoDeepSupervision` as ``network.decoder`` and return the network."""
    if hasattr(network, "decoder"):
        raise RuntimeError(
            f"{type(network).__name__} already has a 'decoder' attribute; refusing to replace it"
        )
    network.decoder = NoDeepSupervision(type(network).__name__)
    return network


def _refuse_deep_supervision(deep_supervision: bool, name: str) -> None:
    if deep_supervision:
        raise ValueError(f"{name} has no deep supervision: {_NO_DS_HINT}")


def swin_unetr(
    in_channels: int = 4,
    out_channels: int = 3,
    feature_size: int = 48,
    use_v2: bool = False,
    spatial_dims: int = 3,
) -> SwinUNETR:
    """MONAI Swin-UNETR (patch size 2, window 7, depths (2, 2, 2, 2)) with a ``decoder`` stand-in.

    ``feature_size`` must be divisible by 12; inputs (B, C_in, Z, Y, X) must have every spatial
    size divisible by 32 (MONAI checks this in ``forward``) and at least 64 along one axis (at 32^3
    the deepest features are one voxel and MONAI's instance norm fails). Returns logits
    (B, C_out, Z, Y, X).
    """
    network = SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        feature_size=feature_size,
        use_v2=use_v2,
        spatial_dims=spatial_dims,
    )
    return _attach_no_ds_decoder(network)


def residual_unet(
    in_channels: int = 4,
    out_channels: int = 3,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    strides: Sequence[int] = (2, 2, 2, 2),
    num_res_units: int = 2,
) -> UNet:
    """MONAI 3D U-Net with residual units (instance norm, PReLU) and a ``decoder`` stand-in.

    Inputs (B, C_in, Z, Y, X) need spatial sizes divisible by the product of ``strides``, and the
    deepest level must keep more than one voxel (instance norm).
    """
    network = UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=tuple(strides),
        num_res_units=num_res_units,
    )
    return _attach_no_ds_decoder(network)


def segresnet(
    in_channels: int = 4,
    out_channels: int = 3,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    blocks_up: Sequence[int] = (1, 1, 1),
) -> SegResNet:
    """MONAI 3D SegResNet (group norm with 8 groups, so ``init_filters`` divisible by 8).

    Inputs (B, C_in, Z, Y, X) need spatial sizes divisible by ``2**(len(blocks_down) - 1)``.
    """
    network = SegResNet(
        spatial_dims=3,
        init_filters=init_filters,
        in_channels=in_channels,
        out_channels=out_channels,
        blocks_down=tuple(blocks_down),
        blocks_up=tuple(blocks_up),
    )
    return _attach_no_ds_decoder(network)


# The plans adapters accept ``strides`` and ignore it: nnU-Net reads the plans' ``strides`` to
# compute its deep-supervision scales (and some of its code paths expect the entry), but these
# networks fix their own downsampling.


def swinunetr_from_plans(
    input_channels: int,
    num_classes: int,
    deep_supervision: bool = False,
    strides: Any = None,
    feature_size: int = 48,
    use_v2: bool = False,
    spatial_dims: int = 3,
) -> SwinUNETR:
    """:func:`swin_unetr` called the way nnU-Net's ``get_network_from_plans`` calls a network class."""
    _refuse_deep_supervision(deep_supervision, "SwinUNETR")
    return swin_unetr(input_channels, num_classes, feature_size, use_v2, spatial_dims)


def resunet_from_plans(
    input_channels: int,
    num_classes: int,
    deep_supervision: bool = False,
    strides: Any = None,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    unet_strides: Sequence[int] = (2, 2, 2, 2),
    num_res_units: int = 2,
) -> UNet:
    """:func:`residual_unet` for nnU-Net plans.

    The plans' ``strides`` are nnU-Net's (ignored here); the U-Net's own strides are ``unet_strides``.
    """
    _refuse_deep_supervision(deep_supervision, "UNet")
    return residual_unet(input_channels, num_classes, channels, unet_strides, num_res_units)


def segresnet_from_plans(
    input_channels: int,
    num_classes: int,
    deep_supervision: bool = False,
    strides: Any = None,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    blocks_up: Sequence[int] = (1, 1, 1),
) -> SegResNet:
    """:func:`segresnet` for nnU-Net plans (the plans' ``strides`` are ignored)."""
    _refuse_deep_supervision(deep_supervision, "SegResNet")
    return segresnet(input_channels, num_classes, init_filters, blocks_down, blocks_up)


# --- pretrained Swin-UNETR encoder -------------------------------------------------------------

_PREFIXES = ("module.", "_orig_mod.", "swin_vit.", "swinViT.", "encoder.")


def _encoder_key(key: str) -> str:
    """Map a checkpoint key onto a key of ``SwinUNETR.swinViT.state_dict()``.

    Strips wrapper prefixes (``module.`` from DataParallel, ``swinViT.``/``swin_vit.``, ...), renames
    the Swin MLP's ``fc1``/``fc2`` (the self-supervised checkpoints) to MONAI's ``linear1``/``linear2``
    and drops the extra ``.0`` some self-supervised encoders have after ``layersN.0``.
    """
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    key = key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")
    return re.sub(r"^(layers\d)\.0\.0\.", r"\1.0.", key)


def _load_checkpoint(path: Path) -> Any:
    """``torch.load`` on the CPU, tensors only first; then, with a warning, a full unpickle."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # e.g. pickle.UnpicklingError: not tensors only, or not a checkpoint
        first_error = first
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as second:
        raise InputError(
            f"cannot read pretrained weights file {path}: it is not a PyTorch checkpoint "
            f"({type(first_error).__name__}: {str(first_error).splitlines()[0] if str(first_error) else ''}; "
            f"{type(second).__name__}: {second})"
        ) from second
    warnings.warn(
        f"pretrained weights file {path} holds Python objects besides tensors (e.g. an nnU-Net checkpoint) "
        "and was loaded with torch.load(weights_only=False), which can run code from the file: "
        "only use files you trust",
        stacklevel=3,
    )
    return content


def _state_dict_of(content: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: MONAI SSL ("state_dict"), nnU-Net ("network_weights"), ..."""
    if not isinstance(content, Mapping):
        raise InputError(
            f"pretrained weights file {path} holds a {type(content).__name__}, not a state dict or checkpoint"
        )
    for wrapper in ("state_dict", "network_weights", "model", "model_state_dict"):
        inner = content.get(wrapper)
        if isinstance(inner, Mapping):
            content = inner
            break
    return {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}


def load_swin_encoder_weights(model: SwinUNETR, path: str | os.PathLike) -> dict[str, int]:
    """Copy pretrained Swin encoder weights from a local file into ``model.swinViT``.

    Accepted files: MONAI's self-supervised Swin-UNETR checkpoint (``{"state_dict": {"module.
    patch_embed.proj.weight": ..., "module.layers1.0.blocks.0.mlp.fc1.weight": ...}}``), an nnU-Net
    checkpoint (``"network_weights"``) or a plain state dict (e.g. ``SwinUNETR.state_dict()``). Every
    tensor whose mapped name and shape match an encoder tensor is copied; the rest of the model is
    left alone, as are encoder tensors of another shape (warned about; e.g. the patch embedding of a
    1-channel pretrained encoder in a 4-channel model). Nothing is downloaded.

    Returns ``{"matched": n, "total_in_file": n, "total_in_model": n}`` (tensors copied, tensors in
    the file, tensors in ``model.swinViT``). Raises FileNotFoundError for a missing file and
    :class:`~nnunet_diffrefine.errors.InputError` for an unreadable file or one without any matching
    tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    encoder = getattr(model, "swinViT", None)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"expected a MONAI SwinUNETR with a .swinViT encoder, got {type(model).__name__}")
    source = _state_dict_of(_load_checkpoint(path), path)
    target = encoder.state_dict()
    updates: dict[str, torch.Tensor] = {}
    wrong_shape: list[str] = []
    for key, tensor in source.items():
        name = _encoder_key(key)
        if name not in target:
            continue
        if tensor.shape == target[name].shape:
            updates[name] = tensor
        else:
            wrong_shape.append(f"{key} {tuple(tensor.shape)} vs {tuple(target[name].shape)}")
    if not updates:
        example = f", e.g. {next(iter(source))!r}" if source else ""
        shapes = (
            f"; {len(wrong_shape)} matched by name but not shape, e.g. {wrong_shape[0]}"
            if wrong_shape
            else ""
        )
        raise InputError(
            f"pretrained weights file {path} has no tensor matching the Swin-UNETR encoder: it holds "
            f"{len(source)} tensors{example}{shapes}; expected keys like 'module.patch_embed.proj.weight' "
            "(MONAI self-supervised), 'swinViT.patch_embed.proj.weight' or an nnU-Net checkpoint"
        )
    if wrong_shape:
        warnings.warn(
            f"{len(wrong_shape)} tensors of {path} were not loaded because their shape differs from the "
            f"model's: {', '.join(wrong_shape[:3])}{', ...' if len(wrong_shape) > 3 else ''}",
            stacklevel=2,
        )
    merged = dict(target)
    merged.update({k: v.to(dtype=target[k].dtype) for k, v in updates.items()})
    encoder.load_state_dict(merged, strict=True)
    return {"matched": len(updates), "total_in_file": len(source), "total_in_model": len(target)}
