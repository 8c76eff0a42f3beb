"""Deliberately damaged priors: ground truth eroded, dilated or shifted, blurred and noised.

Used to check that a refiner learns to repair a prior (tests and benchmarks): the damage is
systematic enough to be learnable and random enough not to be a fixed offset.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.brats import REGIONS

DAMAGE_MODES = ("dilate", "erode", "shift", "mixed")


def region_targets(
    labels: np.ndarray, regions: tuple[tuple[int, ...], ...] = (REGIONS["WT"], REGIONS["TC"], REGIONS["ET"])
) -> np.ndarray:
    """BraTS label map ``(Z, Y, X)`` -> float32 region masks ``(C, Z, Y, X)`` (WT, TC, ET by default)."""
    return np.stack([np.isin(labels, r) for r in regions]).astype(np.float32)


def damaged_prior(
    target: np.ndarray,
    rng: np.random.Generator,
    mode: str = "mixed",
    amount: int = 1,
    blur: float = 0.8,
    noise: float = 0.15,
) -> np.ndarray:
    """Probabilities ``(C, Z, Y, X)`` float32 in [0, 1] made from binary masks ``target`` ``(C, Z, Y, X)``.

    ``mode``: ``dilate``/``erode`` by ``amount`` voxels, ``shift`` by ``amount`` voxels along a random
    axis, or ``mixed`` (one of the three per case); then a Gaussian blur of ``blur`` voxels and smooth
    noise of standard deviation ``noise`` within 3 voxels of the damaged mask.
    """
    if mode not in DAMAGE_MODES:
        raise ValueError(f"unknown damage mode {mode!r}; choose one of {DAMAGE_MODES}")
    if mode == "mixed":
        mode = str(rng.choice(DAMAGE_MODES[:3]))
    axis, direction = int(rng.integers(3)), int(rng.choice([-1, 1]))
    out = np.empty_like(target, dtype=np.float32)
    for c in range(target.shape[0]):
        mask = target[c] > 0.5
        if mode == "dilate":
            mask = ndimage.binary_dilation(mask, iterations=amount)
        elif mode == "erode":
            mask = ndimage.binary_erosion(mask, iterations=amount)
        else:
            mask = (
                ndimage.shift(
                    mask.astype(np.uint8), [direction * amount if a == axis else 0 for a in range(3)], order=0
                )
                > 0
            )
        soft = ndimage.gaussian_filter(mask.astype(np.float32), blur) if blur > 0 else mask.astype(np.float32)
        wobble = ndimage.gaussian_filter(rng.standard_normal(mask.shape).astype(np.float32), 1.0)
        wobble /= max(float(wobble.std()), 1e-6)
        near = ndimage.binary_dilation(
            mask, iterations=3
        )  # uncertainty lives near the boundary, as in real priors
        out[c] = np.clip(soft + noise * wobble * near, 0.0, 1.0)
    return out
