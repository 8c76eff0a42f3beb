"""The voxelwise-classifier ceiling: known answers on data it can and cannot separate."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_diffrefine.benchmark.ceiling import (
    LabelledVolume,
    brain_mask,
    mean_regions,
    region_dice,
    voxel_features,
    voxelwise_ceiling,
)


def _case(i: int, informative: bool) -> LabelledVolume:
    """A 20³ 'brain' (a ball) with nested spheres ET in NCR in ED; intensities tell the classes apart
    (``informative``) or are pure noise."""
    rng = np.random.default_rng(i)
    zz, yy, xx = np.mgrid[:20, :20, :20]
    r = np.sqrt((zz - 10) ** 2 + (yy - 10 - i % 3) ** 2 + (xx - 10) ** 2)
    labels = np.select([r < 2.5, r < 4, r < 6], [3, 1, 2], 0).astype(np.uint8)
    brain = r < 9.5
    images = rng.normal(100, 5, (4, 20, 20, 20)).astype(np.float32)
    if informative:
        images += 40.0 * np.stack([labels == 1, labels == 2, labels == 3, labels > 0])
    images[:, ~brain] = 0
    return LabelledVolume(f"case{i:02d}", images, labels)


def test_region_dice_matches_a_direct_count():
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[0, :2] = 1
    ref[1] = 2
    ref[2, 0] = 3
    pred = ref.copy()
    pred[1, 0] = 0  # four ED voxels missed
    pred[2, 0, 0] = 1  # one ET voxel called NCR
    d = region_dice(pred, ref)
    wt_ref, wt_pred = np.isin(ref, (1, 2, 3)), np.isin(pred, (1, 2, 3))
    assert d["WT"] == pytest.approx(2 * (wt_ref & wt_pred).sum() / (wt_ref.sum() + wt_pred.sum()))
    assert d["TC"] == 1.0 and d["ET"] == pytest.approx(2 * 3 / 7)
    assert region_dice(np.zeros_like(ref), np.zeros_like(ref)) == {"WT": 1.0, "TC": 1.0, "ET": 1.0}


def test_features_are_z_scored_per_case_inside_the_brain():
    case = _case(0, True)
    brain = brain_mask(case.images)
    x = voxel_features(case.images * 3 + 7 * (case.images != 0), brain)
    assert x.shape == (brain.sum(), 8)
    assert np.allclose(x[:, ::2].mean(0), 0, atol=1e-4) and np.allclose(x[:, ::2].std(0), 1, atol=1e-3)
    assert np.allclose(x, voxel_features(case.images, brain), atol=1e-4), "invariant to each case's scale"


def test_separable_data_reach_the_ceiling_and_noise_does_not():
    separable = voxelwise_ceiling([_case(i, True) for i in range(6)], folds=3)
    noise = voxelwise_ceiling([_case(i, False) for i in range(6)], folds=3)
    assert sorted(separable) == [f"case{i:02d}" for i in range(6)]
    assert mean_regions(separable)["mean"] > 0.95
    assert mean_regions(noise)["mean"] < 0.5
