"""The region of interest of the conditioned refiners: where the prior sees tumor, plus a margin."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import DatasetSignature
from nnunet_diffrefine.refine.registry import create_refiner, refiner_settings
from nnunet_diffrefine.refine.roi import change_band, refine_in_roi, roi_box, tumor_regions

SETTINGS = SimpleNamespace(roi=True, roi_threshold=0.05, roi_margin=2, patch_size=(4, 4, 4))


def _prior(shape=(3, 20, 30, 40)) -> np.ndarray:
    prior = np.full(shape, 0.01, dtype=np.float32)
    prior[0, 5:8, 10:12, 30:39] = 0.9  # the tumor the prior sees
    prior[2, 6, 11, 31] = 0.06  # just above the threshold, inside the same box
    return prior


def test_box_is_the_thresholded_prior_plus_the_margin_clamped_to_the_volume():
    box = roi_box(_prior(), True, [4, 4, 4], 0.05, 2)
    assert box == (slice(3, 10), slice(8, 14), slice(28, 40))  # x: 30 - 2 .. 39 + 2, clamped at 40


def test_box_grows_to_a_patch_where_the_volume_allows_and_stays_inside_it():
    prior = np.zeros((3, 20, 30, 40), dtype=np.float32)
    prior[1, 0, 0, 39] = 1.0  # a corner voxel
    box = roi_box(prior, True, [8, 10, 12], 0.05, 0)
    assert box == (slice(0, 8), slice(0, 10), slice(28, 40))
    assert roi_box(prior, True, [64, 64, 64], 0.05, 0) == (slice(0, 20), slice(0, 30), slice(0, 40))


def test_label_priors_use_one_minus_the_background():
    prior = np.zeros((4, 10, 10, 10), dtype=np.float32)
    prior[0] = 1.0
    prior[0, 4, 4, 4], prior[3, 4, 4, 4] = 0.3, 0.7
    assert roi_box(prior, False, [1, 1, 1], 0.05, 1) == (slice(3, 6),) * 3


def _flood_fill_reference(probability: np.ndarray, low: float, high: float) -> np.ndarray:
    """Brute force: a breadth-first search over face neighbours above ``low``, from every voxel above ``high``."""
    keep = np.zeros(probability.shape, bool)
    queue = [tuple(v) for v in np.argwhere(probability > high)]
    for v in queue:
        keep[v] = True
    while queue:
        z, y, x = queue.pop()
        for d in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            n = (z + d[0], y + d[1], x + d[2])
            if all(0 <= a < b for a, b in zip(n, probability.shape)) and not keep[n] and probability[n] > low:
                keep[n] = True
                queue.append(n)
    return keep


def test_tumor_regions_are_the_hysteresis_threshold_of_a_flood_fill():
    rng = np.random.default_rng(0)
    for _ in range(5):
        probability = rng.random((9, 10, 11)) ** 3
        assert np.array_equal(
            tumor_regions(probability, 0.05, 0.5), _flood_fill_reference(probability, 0.05, 0.5)
        )
        assert np.array_equal(tumor_regions(probability, 0.05, 0.05), probability > 0.05)


def test_faint_specks_far_from_the_tumor_do_not_stretch_the_box():
    prior = _prior()
    prior[1, 18, 1, 1] = 0.2  # a faint speck in a far corner: no voxel of its region exceeds 0.5
    prior[1, 5:8, 12, 30] = 0.2  # faint, but touching the tumor: kept
    assert roi_box(prior, True, [4, 4, 4], 0.05, 2, 0.5) == (slice(3, 10), slice(8, 15), slice(28, 40))
    assert roi_box(prior, True, [4, 4, 4], 0.05, 2) == (slice(3, 20), slice(0, 15), slice(0, 40))
    prior[1, 18, 1, 1] = 0.6  # the far region now reaches the seed threshold
    assert roi_box(prior, True, [4, 4, 4], 0.05, 2, 0.5) == (slice(3, 20), slice(0, 15), slice(0, 40))


def test_the_seed_threshold_may_not_be_below_the_region_threshold():
    with pytest.raises(InputError, match="roi_seed_threshold 0.01 is below roi_threshold 0.05"):
        refiner_settings("corrdiff", roi_seed_threshold=0.01)


def test_settings_saved_before_the_seed_threshold_keep_their_region():
    """A refiner saved without ``roi_seed_threshold`` draws its box as it did: every region above
    its ``roi_threshold`` (and loads even when that threshold is above 0.5)."""
    from nnunet_diffrefine.refine.corrdiff import CorrDiffSettings

    saved = CorrDiffSettings().to_dict()
    del saved["roi_seed_threshold"]
    assert CorrDiffSettings.from_dict(saved).roi_seed_threshold == saved["roi_threshold"] == 0.05
    saved["roi_threshold"] = 0.6
    assert CorrDiffSettings.from_dict(saved).roi_seed_threshold == 0.6
    assert CorrDiffSettings().roi_seed_threshold == 0.5  # new refiners: hysteresis


def test_nothing_to_correct_gives_no_box():
    assert roi_box(np.full((3, 8, 8, 8), 0.01, np.float32), True, [4, 4, 4], 0.05, 2) is None


def test_refine_in_roi_changes_the_box_only_and_fills_the_rest():
    prior, image = _prior(), np.ones((4, 20, 30, 40), dtype=np.float32)
    seen = []

    def refine(p, i):
        seen.append((p.shape, i.shape))
        return p + 1, np.full_like(p, 0.5)

    refined, spread = refine_in_roi(refine, prior, image, True, SETTINGS, ("prior", "zero"))
    assert seen == [((3, 7, 6, 12), (4, 7, 6, 12))]
    inside = (slice(None), slice(3, 10), slice(8, 14), slice(28, 40))
    assert np.array_equal(refined[inside], prior[inside] + 1) and np.all(spread[inside] == 0.5)
    outside = np.ones(refined.shape, bool)
    outside[inside] = False
    assert np.array_equal(refined[outside], prior[outside]) and np.all(spread[outside] == 0)

    whole = refine_in_roi(
        refine, prior, image, True, SimpleNamespace(**{**vars(SETTINGS), "roi": False}), ("prior", "zero")
    )
    assert seen[-1] == ((3, 20, 30, 40), (4, 20, 30, 40)) and np.array_equal(whole[0], prior + 1)
    empty = np.full_like(prior, 0.01)
    untouched = refine_in_roi(refine, empty, image, True, SETTINGS, ("prior", "zero"))
    assert len(seen) == 2 and np.array_equal(untouched[0], empty) and not untouched[1].any()


def test_conditioned_refiners_use_the_roi_and_scratch_ones_cannot():
    signature = DatasetSignature("Dataset999_Phantoms", 4, 3, True, {})
    for name in ("corrdiff", "ddpm", "medsegdiff"):
        assert create_refiner(name, signature).settings.roi is True
    for name in ("ddpm_scratch", "medsegdiff_scratch"):
        assert create_refiner(name, signature).settings.roi is False
        with pytest.raises(InputError, match="never sees the prior"):
            create_refiner(name, signature, refiner_settings(name, roi=True))
        with pytest.raises(InputError, match="change_band"):
            create_refiner(name, signature, refiner_settings(name, change_band=2))


def _brute_force_band(mask: np.ndarray, width: float) -> np.ndarray:
    """Voxels within ``width`` of a voxel on the other side of the mask's boundary, by checking every pair."""
    points = np.argwhere(np.ones_like(mask))
    inside, outside = np.argwhere(mask), np.argwhere(~mask)
    band = np.zeros(mask.shape, bool)
    for p in points:
        others = outside if mask[tuple(p)] else inside
        if len(others) and np.sqrt(((others - p) ** 2).sum(1)).min() <= width:
            band[tuple(p)] = True
    return band


@pytest.mark.parametrize("width", [1, 1.5, 3])
def test_change_band_is_every_voxel_within_width_of_the_boundary_per_region(width):
    rng = np.random.default_rng(0)
    prior = np.full((3, 9, 10, 11), 0.1, np.float32)
    prior[0, 2:7, 3:8, 2:9] = 0.9
    prior[1] = np.where(rng.random((9, 10, 11)) > 0.8, 0.7, 0.2)  # a scattered mask
    # channel 2 (e.g. ET) is empty: no boundary, no band
    band = change_band(prior, True, width)
    for c in (0, 1):
        assert np.array_equal(band[c], _brute_force_band(prior[c] > 0.5, width)), c
    assert not band[2].any()
    assert not change_band(np.full_like(prior, 0.9), True, width).any()  # full masks have no boundary


def test_change_band_of_label_outputs_is_the_foregrounds_for_every_channel():
    prior = np.zeros((4, 9, 10, 11), np.float32)
    prior[0] = 1.0
    prior[:, 2:7, 3:8, 2:9] = 0.0
    prior[2, 2:7, 3:8, 2:9] = 1.0  # label 2 inside, background outside
    band = change_band(prior, False, 2)
    expected = _brute_force_band(prior.argmax(0) != 0, 2)
    assert all(np.array_equal(band[c], expected) for c in range(4))


def test_refine_in_roi_with_a_change_band_keeps_the_prior_outside_it():
    prior, image = _prior(), np.ones((4, 20, 30, 40), dtype=np.float32)

    def refine(p, i):
        return np.clip(p + 0.5, 0, 1), np.full_like(p, 0.5)

    banded = SimpleNamespace(**{**vars(SETTINGS), "change_band": 2})
    free, _ = refine_in_roi(refine, prior, image, True, SETTINGS, ("prior", "zero"))
    refined, spread = refine_in_roi(refine, prior, image, True, banded, ("prior", "zero"))
    band = change_band(prior, True, 2)
    assert band[0].any() and not band[1:].any()  # only channel 0 has a mask
    assert np.array_equal(refined[band], free[band]) and np.all(spread[band] == 0.5)
    assert np.array_equal(refined[~band], prior[~band]) and not spread[~band].any()
    # the box of the roi grows the mask by up to 2 voxels; the band lets changes reach 2 voxels out only
    changed = np.argwhere((refined[0] > 0.5) != (prior[0] > 0.5))
    inside = np.argwhere(prior[0] > 0.5)
    assert len(changed) and max(np.sqrt(((inside - p) ** 2).sum(1)).min() for p in changed) <= 2
    # a saved refiner takes the band as an inference override, and refuses a negative width
    signature = DatasetSignature("Dataset999_Phantoms", 4, 3, True, {})
    settings = create_refiner("control", signature).settings
    assert settings.change_band is None and settings.replace(change_band=3).change_band == 3
    with pytest.raises(InputError, match="change_band"):
        settings.replace(change_band=-1)


@pytest.mark.parametrize("name", ["control", "corrdiff", "ddpm", "medsegdiff"])
def test_every_conditioned_refiner_keeps_the_prior_outside_its_change_band(name, monkeypatch):
    signature = DatasetSignature("Dataset999_Phantoms", 4, 3, True, {})
    settings = refiner_settings(name, "tiny", patch_size=(4, 8, 8), change_band=1)
    refiner = create_refiner(name, signature, settings)
    inner = "_branches_volume" if name == "medsegdiff" else "_refine_volume"

    def everything_changes(prior, image, seed):  # a refiner that moves every voxel of its box
        moved = np.clip(prior + 0.5, 0, 1).astype(np.float32)
        return (moved, moved, np.full_like(prior, 0.5)) if name == "medsegdiff" else (moved, moved * 0 + 0.5)

    monkeypatch.setattr(refiner, inner, everything_changes)
    prior = _prior()
    refined = refiner.refine(prior, np.ones((4, *prior.shape[1:]), np.float32))
    band = change_band(prior, True, 1)
    assert band.any() and np.array_equal(refined[~band], prior[~band])
    assert np.all(refined[band] >= prior[band] + 0.09)  # moved within the band (clipped at 1)
