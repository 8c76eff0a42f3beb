"""MR intensities of the phantoms: tissue means per contrast, bias field and Rician noise.

Mean intensities are relative to white matter on T1n (= 1) and follow the usual appearance of
gliomas on the four BraTS sequences: CSF dark on T1 and FLAIR, bright on T2; edema bright on T2
and FLAIR; the enhancing rim bright on T1c; necrosis dark on T1c and bright on T2; pediatric
non-enhancing tumor T1-hypo and T2/FLAIR-hyperintense. Images are stored as int16 after scaling
each contrast by a scanner gain, as many BraTS files are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_diffrefine.data.brats import MODALITIES
from nnunet_diffrefine.data.noise import smooth_noise
from nnunet_diffrefine.data.realism import REALISTIC_MEANS, RealismSettings, contrast_shift, degrade_channel
from nnunet_diffrefine.data.template import BrainMaps

# tissue -> mean intensity on (T1n, T1c, T2w, T2-FLAIR)
TISSUE_MEANS: dict[str, tuple[float, float, float, float]] = {
    "wm": (1.00, 1.00, 0.55, 0.75),
    "gm": (0.72, 0.75, 0.82, 0.95),
    "csf": (0.28, 0.30, 1.75, 0.18),
    "edema": (0.78, 0.80, 1.30, 1.50),
    "necrosis": (0.45, 0.38, 1.50, 0.85),
    "non_enhancing": (0.62, 0.63, 1.38, 1.30),
    "enhancing": (0.80, 1.90, 1.02, 1.18),
    "fluid": (0.30, 0.32, 1.70, 0.25),  # cyst or resection cavity: CSF-like
}
SCANNER_GAIN: dict[str, float] = {"t1n": 900.0, "t1c": 1000.0, "t2w": 1200.0, "t2f": 800.0}
NOISE_LEVEL = 0.025
"""Standard deviation of each Gaussian component of the Rician noise, relative to white matter."""
BIAS_STRENGTH = 0.12
"""Standard deviation of the log of the multiplicative bias field."""


def compose_contrasts(
    rng: np.random.Generator,
    maps: BrainMaps,
    labels: np.ndarray,
    phenotype: str,
    realism: Realism | None = None,
) -> np.ndarray:
    """The four images ``(4, Z, Y, X)`` int16 (T1n, T1c, T2w, T2-FLAIR), exactly 0 outside the brain.

    ``labels``: the phenotype generator's label map ``(Z, Y, X)`` (1 core, 2 edema, 3 enhancing, 4 fluid);
    ``phenotype`` decides whether label 1 looks like necrosis (``adult``) or non-enhancing tumor
    (``pediatric``). ``realism``: the ``realistic`` profile's appearance (None: the classic phantoms).
    """
    if realism is not None:
        return _compose_realistic(rng, maps, labels, realism)
    shape = labels.shape
    tissue = np.stack([maps.wm, maps.gm, maps.csf])
    tissue_sum = np.maximum(tissue.sum(0), 1e-3)
    blur = 0.5 if phenotype == "adult" else 1.0  # pediatric boundaries are blurrier
    soft = {k: ndimage.gaussian_filter((labels == k).astype(np.float32), blur) for k in (1, 2, 3)}
    fluid = ndimage.gaussian_filter((labels == 4).astype(np.float32), blur) if (labels == 4).any() else None
    tumor_weight = np.clip(soft[1] + soft[2] + soft[3] + (0.0 if fluid is None else fluid), 0.0, 1.0)
    core_name = "necrosis" if phenotype == "adult" else "non_enhancing"
    texture = 1.0 + 0.03 * smooth_noise(rng, shape, 1.0)
    tumor_texture = 1.0 + 0.07 * smooth_noise(rng, shape, 1.5)
    t1_detail = _t1_detail(maps)
    images = np.zeros((len(MODALITIES), *shape), dtype=np.int16)
    for c, modality in enumerate(MODALITIES):
        mu = {name: means[c] for name, means in TISSUE_MEANS.items()}
        healthy = _healthy_tissue(maps, mu, tissue_sum, t1_detail, modality)
        lesion = (soft[1] * mu[core_name] + soft[2] * mu["edema"] + soft[3] * mu["enhancing"]) * tumor_texture
        if fluid is not None:
            lesion = lesion + fluid * mu["fluid"]
        image = ((1.0 - tumor_weight) * healthy + lesion) * texture
        image *= np.exp(BIAS_STRENGTH * smooth_noise(rng, shape, 0.4 * float(np.mean(shape))))
        gain = SCANNER_GAIN[modality] * rng.uniform(0.9, 1.1)
        images[c] = _scanned(rng, image, gain, NOISE_LEVEL, maps.brain)
    return images


def _t1_detail(maps: BrainMaps) -> np.ndarray:
    """The template T1 normalised to WM = 1: the anatomical detail (deep grey nuclei, cortex) it carries."""
    wm_level = float(np.median(maps.t1[maps.wm > 0.9])) if (maps.wm > 0.9).any() else 1.0
    return maps.t1 / max(wm_level, 1e-3)


def _healthy_tissue(
    maps: BrainMaps, mu: dict[str, float], tissue_sum: np.ndarray, t1_detail: np.ndarray, modality: str
) -> np.ndarray:
    """Healthy-tissue intensity ``(Z, Y, X)``: the WM/GM/CSF means ``mu`` mixed by their partial volumes;
    on T1n and T1c half of it is the template's own detail."""
    healthy = (maps.wm * mu["wm"] + maps.gm * mu["gm"] + maps.csf * mu["csf"]) / tissue_sum
    if modality in ("t1n", "t1c"):
        healthy = 0.5 * healthy + 0.5 * t1_detail
    return healthy


def _scanned(
    rng: np.random.Generator, image: np.ndarray, gain: float, noise_level: float, brain: np.ndarray
) -> np.ndarray:
    """``image`` as a magnitude scanner writes it: Rician noise (two Gaussian channels of ``noise_level``),
    the channel's ``gain``, integer intensities >= 1 inside ``brain`` and exactly 0 outside; int16."""
    n1 = rng.standard_normal(image.shape, dtype=np.float32) * noise_level
    n2 = rng.standard_normal(image.shape, dtype=np.float32) * noise_level
    image = np.sqrt((image + n1) ** 2 + n2**2) * gain
    return np.where(brain, np.clip(np.rint(image), 1, np.iinfo(np.int16).max), 0).astype(np.int16)


@dataclass
class Realism:
    """The ``realistic`` profile's inputs to the images: its settings, its own generator, the mask of
    non-enhancing tumour inside label 1 (``(Z, Y, X)`` bool) and the soft map of T1c-bright healthy
    structures (``(Z, Y, X)`` in [0, 1])."""

    settings: RealismSettings
    rng: np.random.Generator
    non_enhancing: np.ndarray
    t1c_mimic: np.ndarray


def _compose_realistic(
    rng: np.random.Generator, maps: BrainMaps, labels: np.ndarray, realism: Realism
) -> np.ndarray:
    """:func:`compose_contrasts` for the ``realistic`` profile: label 1 split into necrosis and
    edema-like non-enhancing tumour, T1c mimics, lower contrast-to-noise, per-channel gamma and bias, and
    in some cases one degraded channel."""
    s, extra = realism.settings, realism.rng
    shape = labels.shape
    tissue_sum = np.maximum(maps.wm + maps.gm + maps.csf, 1e-3)
    blur = s.label_blur_vox
    net = realism.non_enhancing & (labels == 1)
    masks = {
        "necrosis": (labels == 1) & ~net,
        "non_enhancing": net,
        "edema": labels == 2,
        "enhancing": labels == 3,
        "fluid": labels == 4,
    }
    soft = {k: ndimage.gaussian_filter(m.astype(np.float32), blur) for k, m in masks.items() if m.any()}
    tumor_weight = np.clip(sum(soft.values(), np.zeros(shape, np.float32)), 0.0, 1.0)
    texture = 1.0 + 0.04 * smooth_noise(rng, shape, 1.0)
    tumor_texture = 1.0 + s.tumor_texture * smooth_noise(rng, shape, 1.5)
    t1_detail = _t1_detail(maps)
    degraded = int(extra.integers(len(MODALITIES))) if extra.random() < s.artefact_prob else -1
    images = np.zeros((len(MODALITIES), *shape), dtype=np.int16)
    for c, modality in enumerate(MODALITIES):
        mu = {name: means[c] for name, means in REALISTIC_MEANS.items()}
        healthy = _healthy_tissue(maps, mu, tissue_sum, t1_detail, modality)
        healthy = healthy + realism.t1c_mimic * (mu["t1c_mimic"] - healthy)
        lesion = sum((soft[k] * mu[k] for k in soft), np.zeros(shape, np.float32)) * tumor_texture
        image = ((1.0 - tumor_weight) * healthy + lesion) * texture
        image = contrast_shift(extra, image, s)
        image *= np.exp(s.bias_strength * smooth_noise(rng, shape, 0.4 * float(np.mean(shape))))
        if c == degraded:
            image = degrade_channel(extra, image, maps.spacing)
        gain = SCANNER_GAIN[modality] * rng.uniform(0.8, 1.2)
        images[c] = _scanned(rng, image, gain, s.noise_level, maps.brain)
    return images
