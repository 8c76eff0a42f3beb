"""Bidimensional (RANO / RAPNO-style) diameters of a lesion on one slice, in mm.

Method. The lesion is the largest 8-connected component of the slice's mask. Each of its pixels is a
``sr x sc`` mm rectangle (anisotropic spacing is respected); the convex hull of all rectangle corners
is the measured outline, so a single pixel measures its diagonal and an ``a x b`` pixel rectangle its
physical diagonal. The *longest diameter* is the largest distance between two hull vertices (exact:
the diameter of a point set is attained at hull vertices). The *perpendicular diameter* is the longest
chord of the hull at exactly 90° to the longest one: chord length along a fixed direction is a concave,
piecewise-linear function of the chord's offset on a convex polygon, so its maximum lies at the offset
of a hull vertex, and every vertex offset is tried (no angular tolerance needed). The convex hull
bridges concavities (a ring of enhancement is measured across its cavity, as a reader would); it does
not join separate lesions, which is why only the largest component is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

Point = tuple[float, float]


@dataclass(frozen=True)
class Bidimensional:
    """Diameters (mm) and their end points ``((row_mm, col_mm), (row_mm, col_mm))`` measured from the
    slice's top-left pixel corner; ``area_mm2``: the measured component's area."""

    long_mm: float
    perpendicular_mm: float
    long_line: tuple[Point, Point]
    perpendicular_line: tuple[Point, Point]
    area_mm2: float


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2D mask (the first in scan order on ties)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def _hull(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Counter-clockwise hull vertices ``(K, 2)`` in mm of the pixel rectangles' corners."""
    boundary = mask & ~ndimage.binary_erosion(mask)
    rows, cols = np.nonzero(boundary)
    corners = np.concatenate(
        [np.stack([rows + dr, cols + dc], axis=1) for dr in (0, 1) for dc in (0, 1)], axis=0
    )
    points = np.unique(corners, axis=0).astype(float) * np.asarray(spacing, dtype=float)
    return points[ConvexHull(points).vertices]


def _chord(hull: np.ndarray, along: np.ndarray, across: np.ndarray, offset: float) -> tuple[float, float]:
    """Extent ``(s_min, s_max)`` along ``across`` of the hull's intersection with ``p . along == offset``."""
    a, b = hull, np.roll(hull, -1, axis=0)
    ta, tb = a @ along - offset, b @ along - offset
    sa, sb = a @ across, b @ across
    eps = 1e-9 * max(1.0, float(np.abs(hull).max()))
    hits = []
    on_line = np.abs(ta) <= eps
    hits.extend(sa[on_line].tolist())
    crossing = (ta * tb < 0) & ~on_line & (np.abs(tb) > eps)
    frac = ta[crossing] / (ta[crossing] - tb[crossing])
    hits.extend((sa[crossing] + frac * (sb[crossing] - sa[crossing])).tolist())
    return (min(hits), max(hits)) if hits else (0.0, 0.0)


def bidimensional(mask: np.ndarray, spacing: tuple[float, float]) -> Bidimensional | None:
    """Longest and perpendicular diameters of the largest component of a 2D ``(rows, cols)`` mask with
    pixel size ``spacing`` ``(row, col)`` mm; ``None`` for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    lesion = largest_component(mask)
    hull = _hull(lesion, spacing)
    diff = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    long_mm = float(dist[i, j])
    along = (hull[j] - hull[i]) / long_mm
    across = np.array([-along[1], along[0]])
    best = (-1.0, 0.0, 0.0, 0.0)
    for offset in np.unique(np.round(hull @ along, 9)):
        lo, hi = _chord(hull, along, across, float(offset))
        if hi - lo > best[0] + 1e-9:
            best = (hi - lo, float(offset), lo, hi)
    length, offset, lo, hi = best
    p, q = offset * along + lo * across, offset * along + hi * across
    area = float(lesion.sum()) * float(spacing[0]) * float(spacing[1])
    return Bidimensional(
        long_mm=long_mm,
        perpendicular_mm=float(length),
        long_line=((float(hull[i][0]), float(hull[i][1])), (float(hull[j][0]), float(hull[j][1]))),
        perpendicular_line=((float(p[0]), float(p[1])), (float(q[0]), float(q[1]))),
        area_mm2=area,
    )
