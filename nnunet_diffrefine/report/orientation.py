"""Views of a ``(Z, Y, X)`` array in the patient's LPS axes, whatever the image direction.

SimpleITK's physical space is LPS: +x towards the patient's Left, +y Posterior, +z Superior. A file's
voxel axes may be permuted or flipped against those (any direction matrix); :class:`LPSView` finds,
for each patient axis, the voxel axis closest to it (largest direction cosine) and gives the array
transposed and flipped so that its axes are ``(S, P, L)``: index 0 runs inferior -> superior (axial
slices), 1 anterior -> posterior (coronal), 2 right -> left (sagittal). Oblique images keep their
residual rotation (as with ``sitk.DICOMOrient``); only measurements that say so use this view, the
rest use exact physical coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
"""Slice planes, in the order of the LPS view's axes (S, P, L)."""


@dataclass(frozen=True)
class LPSView:
    """``axes[o]``: the file's numpy axis shown as LPS-view axis ``o`` (0 S, 1 P, 2 L); ``flip[o]``:
    whether it runs the other way; ``spacing``: the view's ``(s, p, l)`` voxel size in mm."""

    axes: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]
    file_shape: tuple[int, int, int]

    @classmethod
    def of(
        cls, direction: Sequence[float], spacing_xyz: Sequence[float], shape_zyx: Sequence[int]
    ) -> LPSView:
        """From SimpleITK's ``GetDirection()`` (row-major 3x3), ``GetSpacing()`` and the numpy shape."""
        matrix = np.asarray(direction, dtype=float).reshape(3, 3)  # column j: sitk index axis j in LPS
        free_physical, free_index = [0, 1, 2], [0, 1, 2]
        chosen: dict[int, int] = {}
        for _ in range(3):  # greedy: the strongest remaining cosine first (well-defined for 45° obliques)
            p, j = max(
                ((p, j) for p in free_physical for j in free_index),
                key=lambda pj: (abs(matrix[pj[0], pj[1]]), -pj[0], -pj[1]),
            )
            chosen[p] = j
            free_physical.remove(p)
            free_index.remove(j)
        order = (2, 1, 0)  # physical z (S), y (P), x (L) -> view axes 0, 1, 2
        axes = tuple(2 - chosen[p] for p in order)
        flip = tuple(bool(matrix[p, chosen[p]] < 0) for p in order)
        spacing = tuple(float(spacing_xyz[chosen[p]]) for p in order)
        return cls(axes, flip, spacing, tuple(int(s) for s in shape_zyx))  # type: ignore[arg-type]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """``array`` (file order, ``(Z, Y, X)``) as ``(S, P, L)``; a view, no copy."""
        out = np.transpose(array, self.axes)
        for o, flipped in enumerate(self.flip):
            if flipped:
                out = np.flip(out, axis=o)
        return out

    def file_axis(self, plane: str) -> int:
        """The file's numpy axis (0 = Z) across which slices of ``plane`` are taken."""
        return self.axes[PLANES.index(plane)]

    def file_index(self, plane: str, index: int) -> int:
        """The file's slice index of the view's slice ``index`` of ``plane``."""
        o = PLANES.index(plane)
        n = self.file_shape[self.axes[o]]
        return n - 1 - int(index) if self.flip[o] else int(index)
