"""Small array helpers shared by the metric modules: spacing checks and bounding boxes (crops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.errors import InputError

Box = tuple[slice, slice, slice]


def as_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """``(z, y, x)`` voxel spacing in mm as three positive floats, or :class:`InputError`."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(0.0 < s < float("inf") for s in values):
        raise InputError(f"spacing must be three positive numbers (mm, z y x), got {tuple(spacing)}")
    return values  # type: ignore[return-value]


def as_mask_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean ``(Z, Y, X)`` arrays of the same shape, or :class:`InputError`."""
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise InputError(f"masks must be 3D arrays of the same shape, got {pred.shape} and {ref.shape}")
    return pred, ref


def bounding_box(mask: np.ndarray, margin: int = 0) -> Box | None:
    """Smallest box holding every True voxel of ``mask``, grown by ``margin`` voxels on each side and
    clipped to the array; ``None`` if ``mask`` is empty."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    found = ndimage.find_objects(mask, max_label=1)
    if not found or found[0] is None:
        return None
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(found[0], mask.shape)
    )  # type: ignore[return-value]


def union_box(boxes: Sequence[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    return tuple(slice(min(b[i].start for b in boxes), max(b[i].stop for b in boxes)) for i in range(3))  # type: ignore[return-value]
