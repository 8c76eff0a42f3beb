"""Smooth random fields, the raw material of tumor shapes, textures and bias fields."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    sigma_vox: float,
) -> np.ndarray:
    """Gaussian-smoothed white noise of zero mean and unit standard deviation.

    Args:
        rng: the random generator (the only source of randomness, for determinism).
        shape: output shape ``(Z, Y, X)``.
        sigma_vox: correlation length in voxels of the output grid.

    Returns:
        ``(Z, Y, X)`` float32 field. For large ``sigma_vox`` the noise is drawn and smoothed on
        a coarser grid and upsampled linearly, which is much cheaper and indistinguishable after
        smoothing (written by hand because no library offers band-limited noise this cheaply).
    """
    shape = tuple(int(s) for s in shape)
    factor = max(1.0, sigma_vox / 2.0)
    low_shape = tuple(max(4, int(np.ceil(s / factor)) + 1) for s in shape)
    low = rng.standard_normal(low_shape, dtype=np.float32)
    low = ndimage.gaussian_filter(low, sigma=sigma_vox / factor, mode="wrap")
    if low_shape != shape:
        zoom = [s / ls for s, ls in zip(shape, low_shape)]
        field = ndimage.zoom(low, zoom, order=1, mode="nearest", grid_mode=True)
        field = field[: shape[0], : shape[1], : shape[2]]
    else:
        field = low
    field = field - field.mean()
    std = field.std()
    return (field / (std if std > 0 else 1.0)).astype(np.float32, copy=False)
