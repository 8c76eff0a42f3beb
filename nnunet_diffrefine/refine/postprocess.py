"""Final masks: threshold (nnU-Net's own conversion), then light morphology per region.

Per region (region-based datasets: WT, TC, ET) or per label: connected components (26-connectivity)
smaller than ``min_component_voxels`` are removed, and holes are filled in the regions listed in
``fill_holes`` (by default WT and TC, which are solid; never ET, whose holes are the necrotic core).
The labels are then painted back in nnU-Net's ``regions_class_order``. The settings are written to
``postprocessing.json`` in the output folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.brats import REGIONS


@dataclass(frozen=True)
class PostprocessConfig:
    enabled: bool = True
    min_component_voxels: int = 10
    fill_holes: tuple[str, ...] = field(default=("WT", "TC"))

    def to_json(self) -> dict:
        d = asdict(self)
        d["fill_holes"] = list(self.fill_holes)
        return d


def _region_name(region) -> str:
    lookup = {tuple(sorted(v)): k for k, v in REGIONS.items()}
    return (
        lookup.get(tuple(sorted(region)), str(region)) if isinstance(region, (tuple, list)) else str(region)
    )


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


def postprocess_segmentation(
    segmentation: np.ndarray, label_manager, config: PostprocessConfig
) -> np.ndarray:
    """Apply ``config`` to a label map ``(Z, Y, X)`` produced by nnU-Net's ``label_manager``."""
    if not config.enabled:
        return segmentation
    out = np.zeros_like(segmentation)
    if label_manager.has_regions:
        for region, label in zip(label_manager.foreground_regions, label_manager.regions_class_order):
            region = tuple(region) if isinstance(region, (list, tuple)) else (region,)
            mask = np.isin(segmentation, region)
            mask = _clean(mask, config.min_component_voxels, _region_name(region) in config.fill_holes)
            out[mask] = label
        return out
    for label in label_manager.foreground_labels:
        mask = _clean(segmentation == label, config.min_component_voxels, str(label) in config.fill_holes)
        out[mask] = label
    return out
