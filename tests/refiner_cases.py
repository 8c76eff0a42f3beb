"""Small refiner training cases shared by the refiner tests: random spheres and cropped phantoms."""

from __future__ import annotations

import numpy as np

from nnunet_diffrefine.data.synth import SynthConfig, generate_case
from nnunet_diffrefine.refine.base import DatasetSignature, TrainingCase
from nnunet_diffrefine.refine.damage import damaged_prior, region_targets

REGIONS = DatasetSignature("Dataset999_Phantoms", 4, 3, True, {})
LABELS = DatasetSignature("Dataset999_Phantoms", 4, 4, False, {"background": 0, "NCR": 1, "ED": 2, "ET": 3})


def sphere_case(signature: DatasetSignature, index: int, size: int = 16) -> TrainingCase:
    """Nested spheres (ET in NCR in ED) in noise, with a noisy prior that roughly sees them."""
    rng = np.random.default_rng(index)
    image = rng.standard_normal((4, size, size, size)).astype(np.float32)
    zz, yy, xx = np.mgrid[:size, :size, :size]
    r = np.sqrt((zz - size / 2) ** 2 + (yy - size / 2 - index % 3) ** 2 + (xx - size / 2) ** 2)
    labels = np.select([r < 2, r < 3.5, r < 5.5], [3, 1, 2], 0)
    image[1] += labels > 0
    if signature.regions:
        target = region_targets(labels)
    else:
        target = np.stack([labels == v for v in range(4)]).astype(np.float32)
    prior = np.clip(0.7 * target + 0.15 + 0.05 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    if not signature.regions:
        prior /= prior.sum(0, keepdims=True)
    return TrainingCase(f"case{index}", image, prior, target)


def phantom_case(index: int, seed: int = 100, crop: int = 32) -> TrainingCase:
    """A 48³ synthetic phantom (z-scored MRI, region targets, a one-voxel dilated prior), cropped to
    ``crop``³ around the prior."""
    case = generate_case(SynthConfig(shape=(48, 48, 48), seed=seed), index)
    image = case.images.astype(np.float32)
    brain = image[0] > 0
    for c in range(4):
        values = image[c][brain]
        image[c] = np.where(brain, (image[c] - values.mean()) / values.std(), 0)
    target = region_targets(case.labels)
    prior = damaged_prior(target, np.random.default_rng(index), "dilate")
    found = np.argwhere(prior.max(0) > 0.5)
    center = (found.min(0) + found.max(0)) // 2
    start = np.clip(center - crop // 2, 0, np.array(target.shape[1:]) - crop)
    box = (slice(None), *[slice(int(s), int(s) + crop) for s in start])
    return TrainingCase(case.case_id, image[box].copy(), prior[box].copy(), target[box].copy())


def mean_dice(prob: np.ndarray, target: np.ndarray) -> float:
    p, t = prob > 0.5, target > 0.5
    return float(
        np.mean([2 * (p[c] & t[c]).sum() / max(1, p[c].sum() + t[c].sum()) for c in range(p.shape[0])])
    )
