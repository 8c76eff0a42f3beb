"""Perturbed priors made on the fly: more priors to learn from than there are labelled cases.

Refiners that help model the discrepancy from a prior and learn it from many more priors than cases
(SegRefiner, NeurIPS 2023, trains on perturbed masks). With ``perturbed_priors`` = f, a training crop's
prior is replaced, with probability f, by one of (equally likely):

- **boundary**: the label's region masks moved by a smooth random field on their signed distance (a
  jitter of up to 2 voxels), then dilated or eroded by one voxel (half the time), softened by a
  Gaussian blur of 0.5-1.5 voxels;
- **components**: the label's masks with one connected component dropped (where there are several) or
  a small spurious blob (radius 2-4 voxels) added near the tumour, blurred likewise;
- **temperature**: the real prior's logits divided by T, ``log2 T`` uniform in [-1, 1] (over- and
  under-confident priors).

Region-based crops get all three; label-based crops (softmax classes) the temperature change only.
Crops are ``(C, ...)`` with 2 or 3 spatial axes (MedSegDiff's slices, the 3D patches).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("boundary", "components", "temperature")


def _soften(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = float(rng.uniform(0.5, 1.5))
    return np.clip(np.stack([ndimage.gaussian_filter(m.astype(np.float32), sigma) for m in masks]), 0, 1)


def _boundary(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(target.shape[1:]).astype(np.float32), 3.0)
    field *= 2.0 / max(float(np.abs(field).max()), 1e-6)
    out = []
    for mask in target > 0.5:
        if not mask.any():
            out.append(mask)
            continue
        signed = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
        moved = signed + field < 0
        if rng.random() < 0.5:
            moved = (ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion)(moved)
        out.append(moved)
    return _soften(np.stack(out), rng)


def _components(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    masks = target > 0.5
    labelled, count = ndimage.label(masks[0])  # the outermost region (WT for BraTS)
    if count > 1:
        drop = labelled == int(rng.integers(1, count + 1))
        masks = masks & ~drop
    else:
        grid = np.indices(masks.shape[1:]).reshape(masks.ndim - 1, -1).T
        near = ndimage.binary_dilation(masks[0], iterations=4) & ~masks[0]
        candidates = grid[near.ravel()] if near.any() else grid
        centre = candidates[rng.integers(len(candidates))]
        radius = float(rng.uniform(2, 4))
        blob = (np.indices(masks.shape[1:]) - centre.reshape(-1, *[1] * (masks.ndim - 1))) ** 2
        blob = blob.sum(0) <= radius**2
        channel = int(rng.integers(masks.shape[0]))
        masks = masks.copy()
        masks[: channel + 1] |= blob  # nested regions: the blob joins every region containing it
    return _soften(masks, rng)


def _temperature(prior: np.ndarray, rng: np.random.Generator, regions: bool) -> np.ndarray:
    t = float(2 ** rng.uniform(-1, 1))
    p = np.clip(prior, 1e-4, 1 - 1e-4)
    if regions:
        return (1 / (1 + np.exp(-(np.log(p) - np.log1p(-p)) / t))).astype(np.float32)
    logits = np.log(p) / t
    e = np.exp(logits - logits.max(0, keepdims=True))
    return (e / e.sum(0, keepdims=True)).astype(np.float32)


def perturbed_prior(
    prior: np.ndarray, target: np.ndarray, rng: np.random.Generator, regions: bool
) -> tuple[np.ndarray, str]:
    """A perturbed prior ``(C, ...)`` float32 for one crop and the kind chosen (see the module docstring)."""
    kind = str(rng.choice(KINDS)) if regions else "temperature"
    if kind == "boundary":
        return _boundary(target, rng), kind
    if kind == "components":
        return _components(target, rng), kind
    return _temperature(prior, rng, regions), kind
