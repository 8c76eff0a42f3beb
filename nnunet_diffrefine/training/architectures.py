"""The plans ``architecture`` entries of this project's networks (read from the ``plans/`` presets).

nnU-Net builds a network from a plans file with ``pydoc.locate(network_class_name)(input_channels=...,
num_classes=..., deep_supervision=..., **arch_kwargs)``; the ``*_from_plans`` adapters in
``nnunet_diffrefine.networks`` take exactly that call. ``arch_kwargs`` always carries ``strides``
because nnU-Net derives its deep-supervision scales (``pool_op_kernel_sizes``) from it.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass


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

    def strides(self) -> list[list[int]]:
        return [[1, 1, 1]] + [[2, 2, 2]] * self.num_downsamplings

    def architecture(self, cpu: bool = False, **overrides) -> dict:
        """A plans ``architecture`` entry (``network_class_name``, ``arch_kwargs``, ``_kw_requires_import``)."""
        kwargs = copy.deepcopy(self.cpu_kwargs if cpu else self.default_kwargs)
        kwargs.update(overrides)
        kwargs["strides"] = self.strides()
        return {"network_class_name": self.class_name, "arch_kwargs": kwargs, "_kw_requires_import": []}


def load_architecture_presets() -> dict[str, ArchitectureSpec]:
    """The presets in the repository's ``plans/`` folder (installed as ``nnunet_diffrefine.plans``)."""
    from importlib.resources import files

    presets = {}
    for entry in sorted(files("nnunet_diffrefine.plans").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        key = entry.name[: -len(".json")]
        data = json.loads(entry.read_text())
        presets[key] = ArchitectureSpec(
            key=key,
            class_name=data["network_class_name"],
            default_kwargs=data["arch_kwargs"],
            cpu_kwargs=data["arch_kwargs_cpu"],
            num_downsamplings=int(data["num_downsamplings"]),
            patch_multiple=int(data["patch_multiple"]),
            deep_supervision=bool(data["deep_supervision"]),
            plans_suffix=data["plans_suffix"],
        )
    return presets


ARCHITECTURES: dict[str, ArchitectureSpec] = load_architecture_presets()


def round_up_patch(patch_size: list[int], multiple: int) -> list[int]:
    """Each side rounded up to a multiple of ``multiple`` (voxels, the network's total downsampling).

    The longest side is made at least ``2 * multiple`` so that the deepest level keeps more than one
    voxel (instance and group norms fail on a single one).
    """
    patch = [int(math.ceil(int(p) / multiple) * multiple) for p in patch_size]
    longest = max(range(len(patch)), key=lambda i: (int(patch_size[i]), -i))
    patch[longest] = max(patch[longest], 2 * multiple)
    return patch
