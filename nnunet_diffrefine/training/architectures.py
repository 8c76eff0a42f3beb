"""The plans ``architecture`` entries of this project's networks.

nnU-Net builds a network from a plans file with ``pydoc.locate(network_class_name)(input_channels=...,
num_classes=..., deep_supervision=..., **arch_kwargs)``; the ``*_from_plans`` adapters in
``nnunet_diffrefine.networks`` take exactly that call. ``arch_kwargs`` always carries ``strides``
because nnU-Net derives its deep-supervision scales (``pool_op_kernel_sizes``) from it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ArchitectureSpec:
    """How one of our networks sits in an nnU-Net plans file."""

    key: str
    class_name: str
    default_kwargs: dict
    cpu_kwargs: dict
    """Few features, for the small-CPU preset (demo and tests)."""
    num_downsamplings: int
    patch_multiple: int
    deep_supervision: bool
    plans_suffix: str
    extra: dict = field(default_factory=dict)

    def strides(self) -> list[list[int]]:
        return [[1, 1, 1]] + [[2, 2, 2]] * self.num_downsamplings

    def architecture(self, cpu: bool = False, **overrides) -> dict:
        """A plans ``architecture`` entry (``network_class_name``, ``arch_kwargs``, ``_kw_requires_import``)."""
        kwargs = copy.deepcopy(self.cpu_kwargs if cpu else self.default_kwargs)
        kwargs.update(overrides)
        kwargs["strides"] = self.strides()
        return {"network_class_name": self.class_name, "arch_kwargs": kwargs, "_kw_requires_import": []}


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "mednext": ArchitectureSpec(
        key="mednext",
        class_name="nnunet_diffrefine.networks.mednext.mednext_from_plans",
        default_kwargs={"size": "B", "kernel_size": 3, "init_filters": 32},
        cpu_kwargs={"size": "S", "kernel_size": 3, "init_filters": 8},
        num_downsamplings=4,
        patch_multiple=16,
        deep_supervision=True,
        plans_suffix="MedNeXt",
    ),
    "swinunetr": ArchitectureSpec(
        key="swinunetr",
        class_name="nnunet_diffrefine.networks.monai_nets.swinunetr_from_plans",
        default_kwargs={"feature_size": 48},
        cpu_kwargs={"feature_size": 12},
        num_downsamplings=5,
        patch_multiple=32,
        deep_supervision=False,
        plans_suffix="SwinUNETR",
    ),
    "resunet": ArchitectureSpec(
        key="resunet",
        class_name="nnunet_diffrefine.networks.monai_nets.resunet_from_plans",
        default_kwargs={"channels": [16, 32, 64, 128, 256], "num_res_units": 2},
        cpu_kwargs={"channels": [8, 16, 32, 64, 128], "num_res_units": 2},
        num_downsamplings=4,
        patch_multiple=16,
        deep_supervision=False,
        plans_suffix="ResUNet",
    ),
    "segresnet": ArchitectureSpec(
        key="segresnet",
        class_name="nnunet_diffrefine.networks.monai_nets.segresnet_from_plans",
        default_kwargs={"init_filters": 16},
        cpu_kwargs={"init_filters": 8},
        num_downsamplings=3,
        patch_multiple=8,
        deep_supervision=False,
        plans_suffix="SegResNet",
    ),
}


def round_up_patch(patch_size: list[int], multiple: int) -> list[int]:
    """Each side rounded up to a multiple of ``multiple`` (voxels, the network's total downsampling).

    The longest side is made at least ``2 * multiple`` so that the deepest level keeps more than one
    voxel (instance and group norms fail on a single one).
    """
    patch = [int(math.ceil(int(p) / multiple) * multiple) for p in patch_size]
    longest = max(range(len(patch)), key=lambda i: (int(patch_size[i]), -i))
    patch[longest] = max(patch[longest], 2 * multiple)
    return patch
