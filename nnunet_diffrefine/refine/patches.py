"""Patches: random training crops from :class:`TrainingCase` arrays (3D patches and 2D axial slices),
and the sliding window that tiles a volume (or a stack of slices) at inference.

A crop's prior is one of its case's priors (:func:`training_prior`). Both samplers centre two thirds
of the crops on a voxel of the tumor (target) or of what the prior calls tumor (probability > 0.5; for
label-based data, the background channel below 0.5) and take the rest uniformly; arrays smaller than
the crop are zero-padded (centred); every crop is flipped at random along each of its spatial axes.
Axial slices are the first spatial axis ``Z`` of nnU-Net's ``(C, Z, Y, X)`` arrays. The inference
windows are MONAI's (``sliding_window_inference``: the training crop size, 25 % overlap, Gaussian
blending, zero padding of inputs smaller than a window).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nnunet_diffrefine.refine.base import TrainingCase
from nnunet_diffrefine.refine.perturb import perturbed_prior

FOREGROUND_FRACTION = 2 / 3


def _pad_to(arrays: list[np.ndarray], need: np.ndarray, regions: bool) -> list[np.ndarray]:
    """``[image, prior, target]`` zero-padded (centred) to at least ``need``; label-based priors and
    targets get background (channel 0 = 1) in the padding, so it is never taken for tumor."""
    shape = np.array(arrays[0].shape[1:])
    pad = np.maximum(need - shape, 0)
    if not pad.any():
        return arrays
    widths = [(0, 0)] + [(int(p // 2), int(p - p // 2)) for p in pad]
    out = [np.pad(a, widths) for a in arrays]
    if not regions:
        inside = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths[1:], shape))
        for a in out[1:]:
            background = np.ones(a.shape[1:], a.dtype)
            background[inside] = a[(0, *inside)]
            a[0] = background
    return out


def foreground(prior: np.ndarray, target: np.ndarray, regions: bool) -> np.ndarray:
    """``(Z, Y, X)`` (or ``(Y, X)``) mask of the tumor in ``target`` or in ``prior`` (``(C, ...)`` each):
    any region channel above 0.5, or, label-based, the background channel (0) below 0.5."""
    if regions:
        return (target.max(0) > 0.5) | (prior.max(0) > 0.5)
    return (target[0] < 0.5) | (prior[0] < 0.5)


def _crop(
    arrays: list[np.ndarray], need: np.ndarray, rng: np.random.Generator, regions: bool
) -> list[np.ndarray]:
    """Crop ``need`` from the trailing spatial axes of every array (channel-first), fg-centred or uniform."""
    shape = np.array(arrays[0].shape[1:])
    if rng.random() < FOREGROUND_FRACTION:
        fg = np.argwhere(foreground(arrays[1], arrays[2], regions))
        center = fg[rng.integers(len(fg))] if len(fg) else rng.integers(0, shape)
        start = np.clip(center - need // 2, 0, shape - need)
    else:
        start = rng.integers(0, shape - need + 1)
    sl = (slice(None), *[slice(int(s), int(s + n)) for s, n in zip(start, need)])
    crop = [a[sl] for a in arrays]
    for axis in range(len(need)):
        if rng.random() < 0.5:
            crop = [np.flip(a, axis + 1) for a in crop]
    return crop


def training_prior(case: TrainingCase, rng: np.random.Generator) -> np.ndarray:
    """The prior a training crop of ``case`` starts from: one of its priors, equally likely (no random
    draw when it has one)."""
    if not case.extra_priors:
        return case.prior
    return (case.prior, *case.extra_priors)[rng.integers(1 + len(case.extra_priors))]


def _maybe_perturb(
    crop: list[np.ndarray], rng: np.random.Generator, perturb: float, regions: bool
) -> list[np.ndarray]:
    """``[image, prior, target]`` with, with probability ``perturb``, a perturbed prior (:mod:`.perturb`)."""
    if perturb <= 0 or rng.random() >= perturb:
        return crop
    return [crop[0], perturbed_prior(crop[1], crop[2], rng, regions)[0], crop[2]]


def _stack(crops: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(np.stack([c[i] for c in crops])).astype(np.float32) for i in range(3))


def sample_patches(
    cases: list[TrainingCase],
    rng: np.random.Generator,
    batch_size: int,
    patch: Sequence[int],
    regions: bool,
    perturb: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``batch_size`` random 3D crops: ``(image (B, I, *patch), prior (B, C, *patch), target (B, C, *patch))``;
    ``perturb``: the share of crops whose prior is perturbed (:mod:`.perturb`)."""
    need = np.array([int(p) for p in patch])
    crops = []
    for _ in range(batch_size):
        case = cases[rng.integers(len(cases))]
        arrays = [case.image, training_prior(case, rng), case.target]
        crop = _crop(_pad_to(arrays, need, regions), need, rng, regions)
        crops.append(_maybe_perturb(crop, rng, perturb, regions))
    return _stack(crops)


def sample_slices(
    cases: list[TrainingCase],
    rng: np.random.Generator,
    num_cases: int,
    slices_per_case: int,
    size: Sequence[int],
    regions: bool,
    perturb: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num_cases * slices_per_case`` random axial crops of ``size`` (H, W): ``(image (N, I, H, W), prior, target)``.

    Each slice index is drawn among the slices holding tumor or prior with probability 2/3 (else
    uniformly); the in-plane crop is then drawn as for 3D patches, on that slice.
    """
    need = np.array([int(s) for s in size])
    crops = []
    for _ in range(num_cases):
        case = cases[rng.integers(len(cases))]
        arrays = [case.image, training_prior(case, rng), case.target]
        arrays = _pad_to(arrays, np.array([1, *need]), regions)
        fg_slices = np.flatnonzero(foreground(arrays[1], arrays[2], regions).any((1, 2)))
        for _ in range(slices_per_case):
            if len(fg_slices) and rng.random() < FOREGROUND_FRACTION:
                z = int(fg_slices[rng.integers(len(fg_slices))])
            else:
                z = int(rng.integers(arrays[0].shape[1]))
            crop = _crop([a[:, z] for a in arrays], need, rng, regions)
            crops.append(_maybe_perturb(crop, rng, perturb, regions))
    return _stack(crops)


def sliding_window(inputs: np.ndarray, roi: Sequence[int], predictor, batch: int = 1) -> torch.Tensor:
    """``predictor`` over ``inputs`` ``(N, ch, *spatial)`` in windows of ``roi``, ``batch`` windows a call
    (windows of different ``N`` items may share a call); returns ``(N, out_ch, *spatial)`` on the CPU."""
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(
        torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
        [int(r) for r in roi],
        int(batch),
        predictor,
        overlap=0.25,
        mode="gaussian",
        padding_mode="constant",
    )
