"""MedNeXt with 3D Global Response Normalization (the MedNeXt-v2 style network used by CoMNeT).

The network is a U-Net made of 3D ConvNeXt blocks (Roy et al., "MedNeXt: Transformer-driven
Scaling of ConvNets for Medical Image Segmentation", MICCAI 2023): a 1x1x1 stem, encoder stages of
residual MedNeXt blocks and residual strided down blocks, a bottleneck, and a decoder of residual
transposed up blocks, additive skip connections and decoder stages, with one 1x1x1 output head per
decoder level for deep supervision.

Building blocks come from MONAI (``monai.networks.blocks.mednext_block``); the network class, the
size table, UpKern and the nnU-Net adapter are written here.

Global Response Normalization (GRN, ConvNeXt-V2) is MONAI's: ``MedNeXtBlock(global_resp_norm=True)``
applies it inside ``forward`` after the 1x1x1 expansion conv and the GELU, before the 1x1x1
compression conv. For the expanded activation ``X`` of shape (B, C, Z, Y, X) it computes
``G_c = ||X_c||_2`` over the spatial axes (per sample and channel), ``N_c = G_c / (mean_c G + 1e-6)``
and ``Y = gamma * (X * N) + beta + X`` with ``gamma`` and ``beta`` (shape (1, C, 1, 1, 1)) initialised
to zero, so a fresh block starts as a plain ConvNeXt block (``tests/test_networks.py`` checks this
against a written-out re-implementation). ``MedNeXtDownBlock`` and ``MedNeXtUpBlock`` subclass
``MedNeXtBlock`` and accept ``global_resp_norm`` too; MONAI's own ``MedNeXt`` net does not pass it to
its down blocks, this network does, so every block (encoder, down, bottleneck, up, decoder) has GRN
when ``global_resp_norm=True``.

Differences from MONAI's ``monai.networks.nets.MedNeXt``: residual connections are always on; the
deep-supervision heads always exist (one per decoder level, none on the bottleneck, so that
checkpoints load whether deep supervision is on or off) and live in ``self.decoder`` next to the up
blocks and decoder stages; ``self.decoder.deep_supervision`` is the switch nnU-Net toggles; with it on
the output is a list ``[full, 1/2, 1/4, 1/8]`` in training and evaluation mode alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks.mednext_block import (
    MedNeXtBlock,
    MedNeXtDownBlock,
    MedNeXtOutBlock,
    MedNeXtUpBlock,
)
from torch import nn

__all__ = [
    "MEDNEXT_SIZES",
    "MedNeXt",
    "MedNeXtDecoder",
    "create_mednext",
    "mednext_from_plans",
    "upkern_load_weights",
]

MEDNEXT_SIZES: dict[str, dict[str, Any]] = {
    "S": {
        "encoder_expansion_ratio": (2, 2, 2, 2),
        "bottleneck_expansion_ratio": 2,
        "decoder_expansion_ratio": (2, 2, 2, 2),
        "blocks_down": (2, 2, 2, 2),
        "blocks_bottleneck": 2,
        "blocks_up": (2, 2, 2, 2),
    },
    "B": {
        "encoder_expansion_ratio": (2, 3, 4, 4),
        "bottleneck_expansion_ratio": 4,
        "decoder_expansion_ratio": (4, 4, 3, 2),
        "blocks_down": (2, 2, 2, 2),
        "blocks_bottleneck": 2,
        "blocks_up": (2, 2, 2, 2),
    },
    "M": {
        "encoder_expansion_ratio": (2, 3, 4, 4),
        "bottleneck_expansion_ratio": 4,
        "decoder_expansion_ratio": (4, 4, 3, 2),
        "blocks_down": (3, 4, 4, 4),
        "blocks_bottleneck": 4,
        "blocks_up": (4, 4, 4, 3),
    },
    "L": {
        "encoder_expansion_ratio": (3, 4, 8, 8),
        "bottleneck_expansion_ratio": 8,
        "decoder_expansion_ratio": (8, 8, 4, 3),
        "blocks_down": (3, 4, 8, 8),
        "blocks_bottleneck": 8,
        "blocks_up": (8, 8, 4, 3),
    },
}
"""Published MedNeXt sizes (Roy et al. 2023, Table 1): expansion ratios and blocks per stage."""

NNUNET_STRIDES: list[list[int]] = [[1, 1, 1]] + [[2, 2, 2]] * 4
"""The ``strides`` an nnU-Net plans entry must list for MedNeXt (stem, then four downsamplings)."""


def _per_stage(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    """Broadcast an int to ``n`` stages or check a sequence has ``n`` entries."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries, expected one per stage ({n})")
    return values


class MedNeXtDecoder(nn.Module):
    """Up blocks, decoder stages and output heads of :class:`MedNeXt`.

    ``deep_supervision`` is a plain boolean attribute (nnU-Net sets it through
    ``network.decoder.deep_supervision``); the heads exist whether it is on or off.
    """

    def __init__(
        self,
        init_filters: int,
        out_channels: int,
        expansion_ratio: Sequence[int],
        blocks_up: Sequence[int],
        kernel_size: int,
        norm_type: str,
        dim: str,
        global_resp_norm: bool,
        deep_supervision: bool,
    ) -> None:
        super().__init__()
        self.deep_supervision = bool(deep_supervision)
        n = len(blocks_up)
        common = {
            "kernel_size": kernel_size,
            "norm_type": norm_type,
            "dim": dim,
            "global_resp_norm": global_resp_norm,
        }
        self.up_blocks = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.heads = nn.ModuleList()
        for i, (ratio, num_blocks) in enumerate(zip(expansion_ratio, blocks_up)):
            ch_in, ch = init_filters * 2 ** (n - i), init_filters * 2 ** (n - i - 1)
            self.up_blocks.append(
                MedNeXtUpBlock(ch_in, ch, expansion_ratio=ratio, use_residual_connection=True, **common)
            )
            self.stages.append(
                nn.Sequential(
                    *[
                        MedNeXtBlock(ch, ch, expansion_ratio=ratio, use_residual_connection=True, **common)
                        for _ in range(num_blocks)
                    ]
                )
            )
            self.heads.append(MedNeXtOutBlock(ch, out_channels, dim))

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Decode the bottleneck output ``x`` (B, C_bottleneck, z, y, x).

        ``skips`` are the encoder stage outputs, highest resolution first. Returns the logits
        (B, C_out, Z, Y, X), or with deep supervision the list of logits at full, 1/2, 1/4, ...
        resolution (one per decoder level, highest resolution first).
        """
        outputs = []
        for i, (up, stage, head) in enumerate(zip(self.up_blocks, self.stages, self.heads)):
            x = stage(up(x) + skips[-(i + 1)])
            if self.deep_supervision or i == len(self.stages) - 1:
                outputs.append(head(x))
        if not self.deep_supervision:
            return outputs[-1]
        return outputs[::-1]


class MedNeXt(nn.Module):
    """MedNeXt U-Net with 3D GRN (MONAI-style arguments).

    Args:
        spatial_dims: 3 (or 2).
        in_channels: input channels (4 for T1n/T1c/T2w/FLAIR).
        out_channels: output channels (3 sigmoid regions, or the softmax classes with background).
        init_filters: channels of the first stage; stage ``i`` has ``init_filters * 2**i``.
        encoder_expansion_ratio: 1x1x1 expansion ratio per encoder stage (int: the same for all).
        decoder_expansion_ratio: the same per decoder stage, lowest resolution first.
        bottleneck_expansion_ratio: the same for the bottleneck blocks.
        blocks_down: MedNeXt blocks per encoder stage (its length is the number of downsamplings).
        blocks_bottleneck: blocks in the bottleneck.
        blocks_up: blocks per decoder stage, lowest resolution first.
        kernel_size: odd depthwise kernel size (3 or 5 in the paper).
        deep_supervision: initial value of ``self.decoder.deep_supervision``.
        global_resp_norm: GRN in every block (MONAI's implementation, see the module docstring).
        norm_type: ``"group"`` (one group per channel). MONAI's ``"layer"`` is refused: its
            ``nn.LayerNorm`` normalises over (C, k, k, k) and only accepts inputs of the kernel's size.

    ``forward`` takes (B, C_in, Z, Y, X) with every spatial size divisible by ``2**len(blocks_down)``
    (and the bottleneck larger than one voxel: group norm needs two values per channel) and returns logits (B, C_out, Z, Y, X), or with deep supervision the list ``[full, 1/2, 1/4, 1/8]``
    (for four downsamplings).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 4,
        out_channels: int = 3,
        init_filters: int = 32,
        encoder_expansion_ratio: Sequence[int] | int = (2, 3, 4, 4),
        decoder_expansion_ratio: Sequence[int] | int = (4, 4, 3, 2),
        bottleneck_expansion_ratio: int = 4,
        blocks_down: Sequence[int] = (2, 2, 2, 2),
        blocks_bottleneck: int = 2,
        blocks_up: Sequence[int] = (2, 2, 2, 2),
        kernel_size: int = 3,
        deep_supervision: bool = False,
        global_resp_norm: bool = True,
        norm_type: str = "group",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (3, 5, ...), got {kernel_size}")
        if norm_type != "group":
            raise ValueError(
                f"norm_type {norm_type!r} is not supported: use 'group' (MONAI's 'layer' normalises over "
                "(C, k, k, k) and only works for inputs as small as the kernel)"
            )
        n = len(blocks_down)
        if n < 1:
            raise ValueError("blocks_down must list at least one encoder stage")
        if len(blocks_up) != n:
            raise ValueError(f"blocks_up has {len(blocks_up)} stages but blocks_down has {n}")
        enc_ratio = _per_stage(encoder_expansion_ratio, n, "encoder_expansion_ratio")
        dec_ratio = _per_stage(decoder_expansion_ratio, n, "decoder_expansion_ratio")
        self.spatial_dims = spatial_dims
        self.num_downsamplings = n
        dim = f"{spatial_dims}d"
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        common = {
            "kernel_size": kernel_size,
            "norm_type": norm_type,
            "dim": dim,
            "global_resp_norm": global_resp_norm,
        }

        self.stem = conv(in_channels, init_filters, kernel_size=1)
        self.enc_stages = nn.ModuleList()
        self.down_blocks = nn.ModuleList()
        for i, (ratio, num_blocks) in enumerate(zip(enc_ratio, blocks_down)):
            ch = init_filters * 2**i
            self.enc_stages.append(
                nn.Sequential(
                    *[
                        MedNeXtBlock(ch, ch, expansion_ratio=ratio, use_residual_connection=True, **common)
                        for _ in range(num_blocks)
                    ]
                )
            )
            self.down_blocks.append(
                MedNeXtDownBlock(ch, 2 * ch, expansion_ratio=ratio, use_residual_connection=True, **common)
            )
        ch = init_filters * 2**n
        self.bottleneck = nn.Sequential(
            *[
                MedNeXtBlock(
                    ch, ch, expansion_ratio=bottleneck_expansion_ratio, use_residual_connection=True, **common
                )
                for _ in range(blocks_bottleneck)
            ]
        )
        self.decoder = MedNeXtDecoder(
            init_filters,
            out_channels,
            dec_ratio,
            blocks_up,
            kernel_size,
            norm_type,
            dim,
            global_resp_norm,
            deep_supervision,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits (B, C_out, Z, Y, X) for x (B, C_in, Z, Y, X); a list [full, 1/2, ...] with deep supervision."""
        factor = 2**self.num_downsamplings
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"MedNeXt expects a (B, C, {'Z, ' if self.spatial_dims == 3 else ''}Y, X) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(
                f"MedNeXt input spatial size {tuple(x.shape[2:])} must be divisible by {factor} "
                f"(2**{self.num_downsamplings} for {self.num_downsamplings} downsamplings)"
            )
        if all(s == factor for s in x.shape[2:]):
            raise ValueError(
                f"MedNeXt input spatial size {tuple(x.shape[2:])} is too small: the bottleneck would be a "
                f"single voxel, where the per-channel group norm is undefined; use at least {2 * factor} "
                "along one axis"
            )
        x = self.stem(x)
        skips = []
        for stage, down in zip(self.enc_stages, self.down_blocks):
            x = stage(x)
            skips.append(x)
            x = down(x)
        return self.decoder(self.bottleneck(x), skips)


def create_mednext(
    size: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    init_filters: int = 32,
    deep_supervision: bool = False,
    global_resp_norm: bool = True,
) -> MedNeXt:
    """A 3D :class:`MedNeXt` of published size ``"S"``, ``"B"``, ``"M"`` or ``"L"`` (see ``MEDNEXT_SIZES``)."""
    key = str(size).upper()
    if key not in MEDNEXT_SIZES:
        raise ValueError(f"unknown MedNeXt size {size!r}; choose one of {', '.join(MEDNEXT_SIZES)}")
    return MedNeXt(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        init_filters=init_filters,
        kernel_size=kernel_size,
        deep_supervision=deep_supervision,
        global_resp_norm=global_resp_norm,
        **MEDNEXT_SIZES[key],
    )


def _is_depthwise(module: nn.Module) -> bool:
    """True for a (transposed) convolution with one group per channel and as many outputs as inputs."""
    conv_types = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return (
        isinstance(module, conv_types)
        and module.groups == module.in_channels == module.out_channels
        and module.groups > 1
    )


def _resize_kernel(weight: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize the spatial part of a conv kernel (C_out, C_in/groups, k, k, k) to ``size``."""
    if mode == "center":
        out = weight.new_zeros(*weight.shape[:2], *size)
        index = [slice(None), slice(None)]
        index += [slice((t - s) // 2, (t - s) // 2 + s) for t, s in zip(size, weight.shape[2:])]
        out[tuple(index)] = weight
        return out
    interp = "trilinear" if len(size) == 3 else "bilinear"
    # align_corners=False, as in the MedNeXt reference implementation of UpKern
    return F.interpolate(weight.float(), size=tuple(size), mode=interp, align_corners=False).to(weight.dtype)


def upkern_load_weights(
    target: MedNeXt, source_state_dict: Mapping[str, torch.Tensor], mode: str = "trilinear"
) -> dict[str, int]:
    """Initialise ``target`` (e.g. kernel 5) from a trained model's state dict (e.g. kernel 3): UpKern.

    Tensors of equal shape are copied. Depthwise conv kernels whose spatial size is smaller in the
    source are resized: ``mode="trilinear"`` interpolates them to the new size (the MedNeXt paper),
    ``mode="center"`` puts them in the centre of a zero kernel (the network then computes exactly what
    the source network did). Source entries the target does not have are skipped. Returns
    ``{"copied": n, "upsampled": n, "skipped": n}``.

    Raises ValueError naming the key for a target tensor missing from the source or any other shape
    mismatch (different channels, a non-depthwise conv, a smaller target kernel, an odd size
    difference with ``mode="center"``).
    """
    if mode not in ("trilinear", "center"):
        raise ValueError(f"unknown UpKern mode {mode!r}; use 'trilinear' or 'center'")
    target_state = target.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    counts = {"copied": 0, "upsampled": 0, "skipped": 0}
    for key, tensor in target_state.items():
        if key not in source_state_dict:
            raise ValueError(
                f"UpKern: the source state dict has no tensor {key!r} (a different architecture?)"
            )
        src = source_state_dict[key]
        if src.shape == tensor.shape:
            new_state[key] = src.detach().to(dtype=tensor.dtype)
            counts["copied"] += 1
            continue
        module_name, _, param_name = key.rpartition(".")
        module = target.get_submodule(module_name) if module_name else target
        t_size, s_size = tensor.shape[2:], src.shape[2:]
        if not (
            param_name == "weight"
            and _is_depthwise(module)
            and src.ndim == tensor.ndim
            and src.shape[:2] == tensor.shape[:2]
            and all(t >= s for t, s in zip(t_size, s_size))
            and (mode != "center" or all((t - s) % 2 == 0 for t, s in zip(t_size, s_size)))
        ):
            raise ValueError(
                f"UpKern: cannot map {key!r} of shape {tuple(src.shape)} onto shape {tuple(tensor.shape)} "
                f"(only depthwise conv kernels may grow{', by an even amount with mode center' if mode == 'center' else ''})"
            )
        new_state[key] = _resize_kernel(src.detach().to(dtype=tensor.dtype), t_size, mode)
        counts["upsampled"] += 1
    counts["skipped"] = sum(1 for key in source_state_dict if key not in target_state)
    target.load_state_dict(new_state, strict=True)
    return counts


def _check_strides(strides: Sequence[Any]) -> None:
    """Raise ValueError unless ``strides`` is [1,1,1] followed by four [2,2,2]."""
    try:
        normalised = [
            [int(s) for s in (stage if isinstance(stage, Sequence) else [stage] * 3)] for stage in strides
        ]
    except (TypeError, ValueError):
        normalised = None
    if normalised != NNUNET_STRIDES:
        raise ValueError(
            f"MedNeXt needs the plans' strides to be {NNUNET_STRIDES} (a 1x1x1 stem then four 2x2x2 "
            f"downsamplings; nnU-Net derives its deep-supervision scales from them), got {strides!r}; "
            "the patch size must also be divisible by 16"
        )


def mednext_from_plans(
    input_channels: int,
    num_classes: int,
    deep_supervision: bool = False,
    size: str = "B",
    kernel_size: int = 3,
    init_filters: int = 32,
    global_resp_norm: bool = True,
    strides: Sequence[Sequence[int]] | None = None,
    **unknown: Any,
) -> MedNeXt:
    """Build a 3D MedNeXt the way nnU-Net's ``get_network_from_plans`` calls a network class.

    nnU-Net calls ``cls(input_channels=..., num_classes=..., deep_supervision=..., **arch_kwargs)``.
    ``arch_kwargs`` must carry ``strides`` (nnU-Net computes its deep-supervision scales from the
    plans' strides); they are checked to be ``[[1,1,1], [2,2,2] x 4]`` and not used otherwise.
    Any other unknown argument raises TypeError.
    """
    if unknown:
        raise TypeError(
            f"mednext_from_plans got unknown arguments {sorted(unknown)}; accepted: size, kernel_size, "
            "init_filters, global_resp_norm, strides"
        )
    if strides is not None:
        _check_strides(strides)
    return create_mednext(
        size,
        input_channels,
        num_classes,
        kernel_size=kernel_size,
        init_filters=init_filters,
        deep_supervision=deep_supervision,
        global_resp_norm=global_resp_norm,
    )
