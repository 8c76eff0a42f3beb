"""The region a conditioned refiner works on: where the prior sees tumor, with a margin around it.

A conditioned refiner corrects the coarse prediction; far from anything the prior calls tumor there
is nothing to correct, and sampling there costs as much as anywhere. With the setting ``roi`` (on
for CorrDiff and the conditioned DDPM and MedSegDiff) a refiner only runs on the bounding box of
the prior's tumor regions, grown by ``roi_margin`` voxels (16) on every side and, where the volume
allows, to at least one patch so the windows see real context instead of padding. A tumor region is
a connected region (face neighbours) of voxels whose foreground probability exceeds
``roi_threshold`` (0.05; for sigmoid regions the largest region probability, for softmax outputs one
minus the background) that exceeds ``roi_seed_threshold`` (0.5) somewhere: hysteresis
thresholding (scikit-image's), so that the faint specks a trained model leaves far from any tumor
do not stretch the box (measured on a trained MedNeXt's probabilities on the 240x240x155 grid: 147
regions above 0.05, 3 of them reaching 0.5; the box shrank from 55 % of the volume to 15 %, before
the margin). ``roi_seed_threshold`` = ``roi_threshold`` keeps every region. Outside the box the prior
is returned unchanged (and a standard deviation of 0); no region leaves the whole prior unchanged.
The price: a tumor the prior never gives more than 0.5, more than 16 voxels from a region it does,
cannot be recovered; ``roi: false`` refines the whole volume. The unconditional (scratch) refiners
never look at the prior, so they always work on the whole volume.

The setting ``change_band`` (off by default) narrows this further: the refined map may differ from the
prior only within that many voxels (Euclidean) of the boundary of the prior's mask (threshold 0.5), per
region channel for region-based outputs and of the whole foreground for label-based ones; elsewhere the
prior is returned (and a standard deviation of 0). A refiner can then move boundaries but not add
structures far from what the prior segments, which bounds how far a new false voxel can lie from the
prior's mask; a region the prior leaves empty stays empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def foreground_probability(prior: np.ndarray, regions: bool) -> np.ndarray:
    """``(Z, Y, X)`` probability of any tumor from the prior ``(C, Z, Y, X)``."""
    return prior.max(0) if regions else 1.0 - prior[0]


def tumor_regions(probability: np.ndarray, threshold: float, seed_threshold: float) -> np.ndarray:
    """``(Z, Y, X)`` bool: voxels of ``probability`` above ``threshold`` in a connected region that
    exceeds ``seed_threshold`` somewhere (hysteresis thresholding)."""
    from skimage.filters import apply_hysteresis_threshold

    if seed_threshold <= threshold:
        return probability > threshold
    return apply_hysteresis_threshold(probability, threshold, seed_threshold)


def roi_box(
    prior: np.ndarray,
    regions: bool,
    patch: Sequence[int],
    threshold: float,
    margin: int,
    seed_threshold: float | None = None,
) -> tuple[slice, ...] | None:
    """The spatial slices of the region of interest (see the module docstring), or None when empty.

    ``prior`` ``(C, Z, Y, X)``; ``seed_threshold`` None: ``threshold`` (every region kept)."""
    seed = threshold if seed_threshold is None else seed_threshold
    found = np.argwhere(tumor_regions(foreground_probability(prior, regions), threshold, seed))
    if not len(found):
        return None
    shape = np.array(prior.shape[1:])
    lo = np.maximum(found.min(0) - int(margin), 0)
    hi = np.minimum(found.max(0) + 1 + int(margin), shape)
    need = np.minimum(np.array([int(p) for p in patch]), shape)
    short = np.maximum(need - (hi - lo), 0)
    lo = np.maximum(lo - short // 2, 0)
    hi = np.minimum(np.maximum(hi + (short - short // 2), lo + need), shape)
    lo = np.minimum(lo, hi - need)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def refine_in_roi(
    refine: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    prior: np.ndarray,
    image: np.ndarray,
    regions: bool,
    settings,
    outside: Sequence[str],
) -> tuple[np.ndarray, ...]:
    """Run ``refine(prior, image)`` (returning ``(C, Z, Y, X)`` arrays) on the region of interest only.

    ``settings``: the refiner's (``roi``, ``roi_threshold``, ``roi_seed_threshold``, ``roi_margin``,
    ``patch_size``, ``change_band``); ``outside`` says what each output holds outside the region (and
    outside the change band): ``"prior"`` or ``"zero"``. Without ``roi`` (or with it false) the whole
    volume is refined.
    """
    box = _box(prior, regions, settings)
    if box is not None and all(s.stop - s.start == n for s, n in zip(box, prior.shape[1:])):
        outputs = tuple(refine(prior, image))
    else:
        outputs = tuple(_filled(prior, outside))
        if box is not None:
            inner = refine(
                np.ascontiguousarray(prior[(slice(None), *box)]),
                np.ascontiguousarray(image[(slice(None), *box)]),
            )
            for full, part in zip(outputs, inner):
                full[(slice(None), *box)] = part
    width = getattr(settings, "change_band", None)
    if width is None:
        return outputs
    keep = ~change_band(prior, regions, width)
    restricted = []
    for out, fill in zip(outputs, outside):
        out = out.copy()
        out[keep] = prior[keep] if fill == "prior" else 0
        restricted.append(out)
    return tuple(restricted)


def _box(prior: np.ndarray, regions: bool, settings) -> tuple[slice, ...] | None:
    """The slices ``refine_in_roi`` refines: the whole volume without ``roi``, else :func:`roi_box`."""
    if not getattr(settings, "roi", False):
        return tuple(slice(0, n) for n in prior.shape[1:])
    return roi_box(
        prior,
        regions,
        settings.patch_size or prior.shape[1:],
        settings.roi_threshold,
        settings.roi_margin,
        getattr(settings, "roi_seed_threshold", None),
    )


def _filled(prior: np.ndarray, outside: Sequence[str]) -> list[np.ndarray]:
    """One ``(C, Z, Y, X)`` float32 array per output: the prior (``"prior"``) or zeros (``"zero"``)."""
    return [prior.astype(np.float32, copy=True) if o == "prior" else np.zeros_like(prior) for o in outside]


def change_band(prior: np.ndarray, regions: bool, width: float) -> np.ndarray:
    """``(C, Z, Y, X)`` bool: voxels within ``width`` voxels (Euclidean) of the boundary of the prior's
    mask (``prior`` ``(C, Z, Y, X)``, threshold 0.5), on both sides of it: per channel for region-based
    outputs, the foreground's (one band for every channel) for label-based ones. An empty or full mask has
    no boundary, so no band."""
    from scipy.ndimage import distance_transform_edt

    masks = prior > 0.5 if regions else (prior.argmax(0) != 0)[None]
    band = np.zeros(masks.shape, bool)
    for c, mask in enumerate(masks):
        if mask.any() and not mask.all():
            # inside: distance to the nearest background voxel; outside: to the nearest mask voxel
            band[c] = np.where(mask, distance_transform_edt(mask), distance_transform_edt(~mask)) <= width
    return band if regions else np.broadcast_to(band, prior.shape)
