"""What makes real BraTS scans hard, added to the phantoms of the ``realistic`` profile.

The ``classic`` phantoms are separable voxel by voxel (a per-voxel classifier reaches 0.96 mean Dice on
them, 0.57 on real BraTS cases at 2 mm), so no spatial model or refiner can show anything there. The
``realistic`` profile adds, each from its own random stream (the classic phantoms stay byte-identical):

- tumour appearance: thin, patchy or absent enhancement, non-enhancing tumour inside the core that looks
  like edema on T2/FLAIR (so TC and WT overlap in intensity), satellite lesions;
- scanner effects: lower contrast-to-noise, stronger per-channel bias fields, per-case contrast (gamma)
  and gain shifts, T1c-bright structures that are not tumour (vessels, dura, choroid plexus), motion
  ghosting or a degraded (thick-slice, noisy) channel in some cases;
- annotation: the label map is the tumour the images were made from, moved by a smooth random
  displacement (annotator-like boundary jitter of a few mm) - the images never see that jitter.

Every function takes its generator and returns new arrays; shapes are ``(Z, Y, X)``, lengths in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.noise import smooth_noise
from nnunet_diffrefine.data.template import BrainMaps

PROFILES = ("classic", "realistic")
"""Synthesis profiles: ``classic`` (the original, voxel-separable phantoms) and ``realistic``."""


@dataclass(frozen=True)
class RealismSettings:
    """The strength of every effect of the ``realistic`` profile (probabilities per case or per lesion)."""

    noise_level: float = 0.05
    """Rician noise: standard deviation of each Gaussian component, relative to white matter on T1n."""
    bias_strength: float = 0.13
    """Standard deviation of the log of each channel's multiplicative bias field."""
    tumor_texture: float = 0.14
    """Relative amplitude of the tumour's intensity heterogeneity."""
    gamma_range: tuple[float, float] = (0.75, 1.35)
    """Per-case, per-channel contrast change ``I -> I ** gamma`` (relative to white matter)."""
    label_blur_vox: float = 0.7
    """Partial-volume blur of the tumour's sub-regions in the images (voxels)."""
    absent_enhancement_prob: float = 0.2
    """Chance that an adult lesion has no enhancing tumour at all."""
    rim_gap_fraction: tuple[float, float] = (0.15, 0.55)
    """Share of the enhancing rim replaced by non-enhancing tumour (patchy enhancement), per lesion."""
    necrosis_ratio: tuple[float, float] = (0.5, 0.85)
    """Inner level of the enhancing rim (close to 1: a thin rim), per lesion."""
    core_scale: tuple[float, float] = (1.2, 1.5)
    """Factor on the classic lesion's radii."""
    edema_ratio: tuple[float, float] = (1.0, 1.3)
    """Edema level set radius relative to the core (classic adult: 1.5-2.3)."""
    non_enhancing_fraction: tuple[float, float] = (0.1, 0.5)
    """Share of the core (label 1) that is non-enhancing tumour looking like edema, not necrosis."""
    satellite_prob: float = 0.35
    """Chance of a second, smaller lesion."""
    jitter_mm: tuple[float, float] = (0.5, 2.0)
    """Amplitude of the annotator's boundary displacement, per case."""
    jitter_length_mm: float = 12.0
    """Correlation length of the annotator's displacement field."""
    vessel_density: float = 0.035
    """Threshold on two smooth fields whose joint zero set draws the T1c-bright vessels."""
    artefact_prob: float = 0.25
    """Chance that one channel of a case has motion ghosting or thick, noisy slices."""


REALISM = RealismSettings()

# tissue -> mean intensity on (T1n, T1c, T2w, T2-FLAIR), relative to white matter on T1n. Closer to the
# healthy tissue than the classic means: real edema and non-enhancing tumour overlap grey matter and CSF
# partial volume on every channel, and enhancement is often faint.
REALISTIC_MEANS: dict[str, tuple[float, float, float, float]] = {
    "wm": (1.00, 1.00, 0.55, 0.75),
    "gm": (0.72, 0.75, 0.82, 0.95),
    "csf": (0.28, 0.30, 1.75, 0.18),
    "edema": (0.80, 0.82, 1.22, 1.38),
    "necrosis": (0.48, 0.42, 1.45, 0.90),
    "non_enhancing": (0.68, 0.70, 1.30, 1.26),
    "enhancing": (0.82, 1.65, 1.00, 1.12),
    "fluid": (0.30, 0.32, 1.70, 0.25),
    "t1c_mimic": (0.85, 1.45, 0.80, 0.85),  # vessels, dura, choroid plexus: T1c-bright, not tumour
}


def realistic_lesion_levels(rng: np.random.Generator, lesion, settings: RealismSettings = REALISM) -> None:
    """Redraw a lesion's size and levels in place towards the BraTS 2018 training cases (mean volumes
    NCR/NET 34, ED 67, ET 21 cm³): a larger core, less edema around it, thin to thick rims (adult)."""
    lesion.radii_mm = tuple(float(r) * rng.uniform(*settings.core_scale) for r in lesion.radii_mm)
    lesion.edema_ratio = float(rng.uniform(*settings.edema_ratio))
    if lesion.phenotype == "adult":
        lesion.necrosis_ratio = float(rng.uniform(*settings.necrosis_ratio))


def patchy_enhancement(
    rng: np.random.Generator, labels: np.ndarray, phenotype: str, spacing, settings: RealismSettings = REALISM
) -> tuple[np.ndarray, np.ndarray]:
    """Labels with gaps in (or no) enhancing rim, and the mask of non-enhancing tumour.

    ``labels``: one lesion's generator labels (1 core, 2 edema, 3 enhancing). Returns ``(labels, net)``:
    rim voxels turned non-enhancing become label 1, and ``net`` (bool) marks every label-1 voxel that
    looks like non-enhancing tumour (edema-like on T2/FLAIR) rather than necrosis.
    """
    out = labels.copy()
    scale = 6.0 / float(np.mean(spacing))  # patches of about 6 mm
    if phenotype != "adult":
        return out, out == 1  # pediatric core: non-enhancing tumour already
    rim = out == 3
    if rng.random() < settings.absent_enhancement_prob:
        gaps = rim
    else:
        field = smooth_noise(rng, out.shape, scale)
        fraction = rng.uniform(*settings.rim_gap_fraction)
        gaps = rim & (field < np.quantile(field[rim], fraction)) if rim.any() else rim
    out[gaps] = 1
    core = out == 1
    net = np.zeros(out.shape, dtype=bool)
    if core.any():
        field = smooth_noise(rng, out.shape, scale)
        share = rng.uniform(*settings.non_enhancing_fraction)
        net = core & (field < np.quantile(field[core], share))
    return out, net | gaps


def t1c_mimics(
    rng: np.random.Generator, maps: BrainMaps, depth_mm: np.ndarray, settings: RealismSettings = REALISM
) -> np.ndarray:
    """Soft map ``(Z, Y, X)`` in [0, 1] of T1c-bright healthy structures: vessels (the joint zero set of two
    smooth fields, about one voxel thick), patches of dura on the brain surface, and choroid plexus in the
    ventricles."""
    spacing = float(np.mean(maps.spacing))
    a = smooth_noise(rng, maps.brain.shape, 8.0 / spacing)
    b = smooth_noise(rng, maps.brain.shape, 8.0 / spacing)
    vessels = (np.abs(a) < settings.vessel_density * 4) & (np.abs(b) < settings.vessel_density * 4)
    surface = (depth_mm > 0) & (depth_mm < 1.5 * spacing)
    dura = surface & (smooth_noise(rng, maps.brain.shape, 10.0 / spacing) > 0.6)
    ventricles = (maps.csf > 0.7) & (depth_mm > 25.0)
    plexus = ventricles & (smooth_noise(rng, maps.brain.shape, 4.0 / spacing) > 1.0)
    mimic = (vessels | dura | plexus) & maps.brain
    return ndimage.gaussian_filter(mimic.astype(np.float32), 0.5)


def contrast_shift(
    rng: np.random.Generator, image: np.ndarray, settings: RealismSettings = REALISM
) -> np.ndarray:
    """``image ** gamma`` (relative units, white matter ~1) with a per-case gamma."""
    return np.power(np.maximum(image, 0.0), rng.uniform(*settings.gamma_range)).astype(np.float32)


def degrade_channel(rng: np.random.Generator, image: np.ndarray, spacing) -> np.ndarray:
    """One channel ``(Z, Y, X)`` with motion ghosting (a shifted, fainter copy along the phase-encoding axis)
    or thick slices (blur across 5 mm along Z) and doubled noise; relative units before the gain."""
    if rng.random() < 0.5:
        shift = int(image.shape[1] // rng.choice([3, 4]))
        return (image + rng.uniform(0.15, 0.3) * np.roll(image, shift, axis=1)).astype(np.float32)
    sigma_z = 5.0 / float(spacing[0])
    blurred = ndimage.gaussian_filter1d(image, sigma_z, axis=0)
    return (blurred + 0.05 * rng.standard_normal(image.shape, dtype=np.float32)).astype(np.float32)


def annotator_jitter(
    rng: np.random.Generator,
    labels: np.ndarray,
    spacing,
    brain: np.ndarray,
    settings: RealismSettings = REALISM,
) -> np.ndarray:
    """``labels`` moved by a smooth random displacement (nearest neighbour): the boundary an annotator draws
    is a few mm off the tumour the images show, differently along the surface. Stays inside ``brain``."""
    amplitude = rng.uniform(*settings.jitter_mm)
    length = settings.jitter_length_mm / float(np.mean(spacing))
    coords = np.indices(labels.shape, dtype=np.float32)
    for axis in range(3):
        coords[axis] += amplitude / float(spacing[axis]) * smooth_noise(rng, labels.shape, length)
    moved = ndimage.map_coordinates(labels, coords, order=0, mode="nearest").astype(labels.dtype)
    return np.where(brain, moved, 0).astype(labels.dtype)
