"""Tumor geometry of the phantoms: irregular nested sub-regions from noise-perturbed level sets.

A lesion is a rotated ellipsoid ``d(x) = ||R^T (x - c) / r||`` (``d = 1`` on its surface) whose
level sets are bent by smooth noise, ``f = d * (1 + a * N(x))``. The tumor core is ``f < 1``; inside
it the necrotic / non-enhancing core (label 1) is ``f < rho`` and the enhancing rim (label 3) the
rest, with a rim thickness that varies along the surface; edema (label 2) is a second, larger and
noisier level set that spreads preferentially along white matter. Everything stays inside the
brain and out of the ventricles' CSF.

Phenotypes:

- ``adult`` (glioblastoma-like): hemispheric white matter, thick irregular enhancing rim around a
  necrotic centre, large edema;
- ``pediatric`` (diffuse midline glioma-like): pons / midbrain / thalamus near the midline,
  infiltrative non-enhancing tumor (label 1) with little or no enhancement and little edema,
  blurrier boundaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.noise import smooth_noise
from nnunet_diffrefine.data.template import BrainMaps

PHENOTYPES = ("adult", "pediatric", "mixed")


@dataclass
class LesionParams:
    """Parameters of one lesion; lengths in mm, ``center`` as a ``(z, y, x)`` voxel index."""

    phenotype: str
    center: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    rotation: tuple[float, ...]  # 3x3 row-major
    shape_noise: float  # amplitude a of the level-set perturbation
    necrosis_ratio: float  # rho: label 1 is f < rho inside the core
    edema_ratio: float  # edema level set radius relative to the core
    enhancing: bool  # pediatric lesions may have no enhancement at all
    mass_effect_mm: float

    def to_json(self) -> dict:
        d = asdict(self)
        d["center"] = [round(float(v), 3) for v in self.center]
        d["radii_mm"] = [round(float(v), 3) for v in self.radii_mm]
        d["rotation"] = [round(float(v), 6) for v in self.rotation]
        for k in ("shape_noise", "necrosis_ratio", "edema_ratio", "mass_effect_mm"):
            d[k] = round(float(d[k]), 4)
        return d


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _pick_voxel(rng: np.random.Generator, candidates: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        raise RuntimeError("no admissible tumor location on this grid (is the grid too coarse?)")
    return np.array(np.unravel_index(idx[rng.integers(idx.size)], candidates.shape), dtype=float)


def sample_lesion(
    rng: np.random.Generator,
    phenotype: str,
    maps: BrainMaps,
    depth_mm: np.ndarray,
    size_scale: float = 1.0,
    avoid: list[np.ndarray] | None = None,
) -> LesionParams:
    """Draw one lesion of ``phenotype`` (``adult`` or ``pediatric``) on the grid of ``maps``.

    ``depth_mm``: distance (mm) of each brain voxel to the brain surface, ``(Z, Y, X)``.
    ``avoid``: centres (voxel indices) of lesions already placed; a satellite keeps 40 mm away.
    """
    spacing = np.array(maps.spacing)
    if phenotype == "adult":
        core_r = rng.uniform(11.0, 22.0) * size_scale
        radii = core_r * rng.uniform(0.75, 1.25, size=3)
        candidates = (maps.wm > 0.6) & (depth_mm > 0.9 * core_r)
        params = dict(
            shape_noise=rng.uniform(0.12, 0.25),
            necrosis_ratio=rng.uniform(0.7, 0.85),
            edema_ratio=rng.uniform(1.5, 2.3),
            enhancing=True,
        )
    elif phenotype == "pediatric":
        core_r = rng.uniform(10.0, 18.0) * size_scale
        radii = core_r * rng.uniform(0.8, 1.2, size=3)
        anchor = maps.anchor_index(
            str(rng.choice(["pons", "pons", "midbrain", "thalamus_right", "thalamus_left"]))
        )
        zz, yy, xx = np.indices(maps.brain.shape, dtype=np.float32)
        dist_mm = np.sqrt(
            ((zz - anchor[0]) * spacing[0]) ** 2
            + ((yy - anchor[1]) * spacing[1]) ** 2
            + ((xx - anchor[2]) * spacing[2]) ** 2
        )
        candidates = maps.brain & (dist_mm < 8.0 + max(spacing))
        params = dict(
            shape_noise=rng.uniform(0.15, 0.25),
            necrosis_ratio=1.0,
            edema_ratio=rng.uniform(1.05, 1.25),
            enhancing=bool(rng.random() < 0.35),
        )
    else:
        raise ValueError(f"unknown phenotype {phenotype!r}; expected one of {PHENOTYPES[:2]}")
    if avoid:
        zz, yy, xx = np.indices(maps.brain.shape, dtype=np.float32)
        for c in avoid:
            far = np.sqrt(
                ((zz - c[0]) * spacing[0]) ** 2
                + ((yy - c[1]) * spacing[1]) ** 2
                + ((xx - c[2]) * spacing[2]) ** 2
            )
            candidates = candidates & (far > 40.0)
    if not candidates.any():  # tiny grids: fall back to any deep brain voxel
        candidates = depth_mm >= np.percentile(depth_mm[maps.brain], 80) if maps.brain.any() else maps.brain
    center = _pick_voxel(rng, candidates)
    return LesionParams(
        phenotype=phenotype,
        center=tuple(center),
        radii_mm=tuple(radii),
        rotation=tuple(_random_rotation(rng).ravel()),
        mass_effect_mm=float(rng.uniform(0.0, 0.35 * core_r)),
        **params,
    )


def _ellipsoid_distance(
    shape: tuple[int, int, int], spacing: np.ndarray, lesion: LesionParams, scale: float = 1.0
) -> np.ndarray:
    """``||R^T (x - c) / r||`` for every voxel (unitless, 1 on the ellipsoid of radii ``scale * r``)."""
    rot = np.array(lesion.rotation).reshape(3, 3)
    radii = np.array(lesion.radii_mm) * scale
    coords = [(np.arange(n, dtype=np.float32) - c) * s for n, c, s in zip(shape, lesion.center, spacing)]
    total = np.zeros(shape, dtype=np.float32)
    for k in range(3):  # coordinate along the k-th principal axis, built by broadcasting
        axis_coord = (
            rot[0, k] * coords[0][:, None, None]
            + rot[1, k] * coords[1][None, :, None]
            + rot[2, k] * coords[2][None, None, :]
        )
        total += (axis_coord / radii[k]) ** 2
    return np.sqrt(total)


def mass_effect_displacement(
    shape: tuple[int, int, int], spacing: np.ndarray, lesion: LesionParams
) -> np.ndarray:
    """Pull-back displacement (voxels, ``(3, Z, Y, X)``) pushing tissue radially away from the lesion."""
    if lesion.mass_effect_mm <= 0:
        return np.zeros((3, *shape), dtype=np.float32)
    grids = np.indices(shape, dtype=np.float32)
    offset = [(g - c) * s for g, c, s in zip(grids, lesion.center, spacing)]
    r = np.sqrt(sum(o**2 for o in offset)) + 1e-3
    reach = float(np.mean(lesion.radii_mm)) * 1.5
    magnitude = lesion.mass_effect_mm * np.exp(-((r / reach) ** 2))
    return np.stack([magnitude * o / r / s for o, s in zip(offset, spacing)]).astype(np.float32)


def lesion_labels(rng: np.random.Generator, maps: BrainMaps, lesion: LesionParams) -> np.ndarray:
    """The BraTS label map ``(Z, Y, X)`` uint8 of one lesion (0 outside)."""
    shape = maps.brain.shape
    spacing = np.array(maps.spacing)
    mean_r = float(np.mean(lesion.radii_mm))
    d = _ellipsoid_distance(shape, spacing, lesion)
    core_f = d * (1.0 + lesion.shape_noise * smooth_noise(rng, shape, 0.35 * mean_r / spacing.mean()))
    edema_noise = smooth_noise(rng, shape, 0.5 * mean_r / spacing.mean())
    white_matter_pull = 0.5 if lesion.phenotype == "adult" else 0.15  # adult edema fingers along WM tracts
    edema_f = d * (1.0 + 1.6 * lesion.shape_noise * edema_noise) - white_matter_pull * (maps.wm - 0.5)
    allowed = maps.brain & (maps.csf < 0.6)
    core = (core_f < 1.0) & maps.brain
    edema = (edema_f < lesion.edema_ratio) & allowed
    labels = np.zeros(shape, dtype=np.uint8)
    labels[edema] = 2
    if lesion.phenotype == "adult":
        rim_noise = smooth_noise(rng, shape, 0.25 * mean_r / spacing.mean())
        necrosis = core & (core_f < lesion.necrosis_ratio * (1.0 + 0.15 * rim_noise))
        labels[core] = 3
        labels[necrosis] = 1
    else:
        labels[core] = 1
        if lesion.enhancing:  # a small enhancing focus inside the non-enhancing tumor
            focus = smooth_noise(rng, shape, 0.2 * mean_r / spacing.mean())
            inner = core & (core_f < 0.8)
            if inner.any():
                threshold = np.quantile(focus[inner], 0.85)
                labels[inner & (focus > threshold)] = 3
    # keep the largest connected component of the core so the lesion is one tumor, not confetti
    core_mask = labels != 0
    comp, n = ndimage.label(core_mask, structure=np.ones((3, 3, 3)))
    if n > 1:
        sizes = ndimage.sum_labels(core_mask, comp, index=np.arange(1, n + 1))
        labels[(comp != 1 + int(np.argmax(sizes))) & core_mask] = 0
    return labels


FLUID = 4
"""The phantoms' own label for fluid (a cyst inside a pediatric tumor, a resection cavity beside an adult
one); the writer maps it to the convention's cystic component or resection cavity (or core)."""


def add_fluid(
    rng: np.random.Generator,
    labels: np.ndarray,
    lesion: LesionParams,
    spacing: tuple[float, float, float],
    brain: np.ndarray,
) -> np.ndarray:
    """``labels`` with a fluid ball (:data:`FLUID`): for a pediatric lesion a cyst (radius 0.35 of the
    core's mean radius, inside the tumor core, off its centre), for an adult one a resection cavity
    (radius 0.6, centred 0.8 radii from the centre, in the brain, over whatever was there)."""
    spacing_mm = np.asarray(spacing, dtype=np.float64)
    mean_r = float(np.mean(lesion.radii_mm))
    direction = rng.standard_normal(3)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    pediatric = lesion.phenotype == "pediatric"
    offset, radius = (0.3, 0.35) if pediatric else (0.8, 0.6)
    centre = np.asarray(lesion.center, dtype=np.float64) + direction * offset * mean_r / spacing_mm
    zz, yy, xx = np.indices(labels.shape, dtype=np.float32)
    d = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), centre, spacing_mm)))
    where = np.isin(labels, (1, 3)) if pediatric else brain
    out = labels.copy()
    out[(d < radius * mean_r) & where] = FLUID
    return out


def merge_labels(maps: list[np.ndarray]) -> np.ndarray:
    """Combine lesion label maps voxel-wise: fluid > enhancing > necrotic core > edema > background."""
    priority = np.array(
        [0, 2, 1, 3, 4], dtype=np.uint8
    )  # indexed by label: background < edema < core < enhancing < fluid
    out = np.zeros_like(maps[0])
    for m in maps:
        replace = priority[m] > priority[out]
        out[replace] = m[replace]
    return out
