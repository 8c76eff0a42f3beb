"""Final masks: threshold (nnU-Net's own conversion), then light morphology per region.

Per region (region-based datasets: WT, TC, ET) or per label: connected components (26-connectivity)
smaller than ``min_component_voxels`` are removed, and holes are filled in the regions listed in
``fill_holes`` (by default WT and TC, which are solid; never ET, whose holes are the necrotic core).
The labels are then painted back in nnU-Net's ``regions_class_order``. The settings are written to
``postprocessing.json`` in the output folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.brats import REGIONS
from nnunet_diffrefine.data.challenges import region_display_names
from nnunet_diffrefine.errors import InputError


@dataclass(frozen=True)
class PostprocessConfig:
    enabled: bool = True
    min_component_voxels: int = 10
    fill_holes: tuple[str, ...] = field(default=("WT", "TC"))

    def to_json(self) -> dict:
        d = asdict(self)
        d["fill_holes"] = list(self.fill_holes)
        return d


def _names_by_region(dataset_json: Mapping | None) -> dict[tuple[int, ...], str]:
    """Sorted label tuple -> region name: from dataset.json (:func:`region_display_names`) when given,
    else the BraTS 2023 regions."""
    if dataset_json is None:
        return {tuple(sorted(v)): k for k, v in REGIONS.items()}
    display = region_display_names(dataset_json)
    out = {}
    for key, value in (dataset_json.get("labels") or {}).items():
        labels = tuple(sorted(int(v) for v in (value if isinstance(value, (list, tuple)) else [value])))
        out[labels] = display.get(key, key)
    return out


def _region_name(region, names: Mapping[tuple[int, ...], str]) -> str:
    if not isinstance(region, (tuple, list)):
        return str(region)
    return names.get(tuple(sorted(int(v) for v in region)), str(tuple(region)))


def _clean(mask: np.ndarray, min_voxels: int, fill: bool) -> np.ndarray:
    if min_voxels > 1 and mask.any():
        components, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        if n:
            sizes = np.bincount(components.ravel())
            keep = sizes >= min_voxels
            keep[0] = False
            mask = keep[components]
    if fill and mask.any():
        mask = ndimage.binary_fill_holes(mask)
    return mask


def region_names(label_manager, dataset_json: Mapping | None = None) -> list[str]:
    """The names ``fill_holes`` may list: the region names (WT/TC/ET ..., from ``dataset_json`` when
    given) for region-based datasets, else the label values."""
    if label_manager.has_regions:
        names = _names_by_region(dataset_json)
        return [
            _region_name(tuple(r) if isinstance(r, (list, tuple)) else (r,), names)
            for r in label_manager.foreground_regions
        ]
    return [str(label) for label in label_manager.foreground_labels]


def check_postprocess(config: PostprocessConfig, label_manager, dataset_json: Mapping | None = None) -> None:
    """One error for settings that do not fit the dataset (before anything is written). The default
    ``fill_holes`` (WT, TC) applies where the dataset has those regions (none in a label-based one)."""
    if config.min_component_voxels < 0:
        raise InputError(f"--pp-min-size must be >= 0, got {config.min_component_voxels}")
    if tuple(config.fill_holes) == PostprocessConfig().fill_holes:
        return
    known = region_names(label_manager, dataset_json)
    unknown = [name for name in config.fill_holes if name not in known]
    if unknown:
        raise InputError(
            f"--pp-fill-holes {' '.join(unknown)}: not a region of this dataset (choose from {', '.join(known)})"
        )


def postprocess_segmentation(
    segmentation: np.ndarray, label_manager, config: PostprocessConfig, dataset_json: Mapping | None = None
) -> np.ndarray:
    """Apply ``config`` to a label map ``(Z, Y, X)`` produced by nnU-Net's ``label_manager`` (region
    names from ``dataset_json`` when given, else the BraTS 2023 ones)."""
    if not config.enabled:
        return segmentation
    out = np.zeros_like(segmentation)
    if label_manager.has_regions:
        names = _names_by_region(dataset_json)
        for region, label in zip(label_manager.foreground_regions, label_manager.regions_class_order):
            region = tuple(region) if isinstance(region, (list, tuple)) else (region,)
            mask = np.isin(segmentation, region)
            mask = _clean(mask, config.min_component_voxels, _region_name(region, names) in config.fill_holes)
            out[mask] = label
        return out
    for label in label_manager.foreground_labels:
        mask = _clean(segmentation == label, config.min_component_voxels, str(label) in config.fill_holes)
        out[mask] = label
    return out
