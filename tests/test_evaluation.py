"""BraTS evaluation (nnunet_diffrefine.evaluation, cli evaluate) against brute-force definitions.

Volumes are tiny (20-32 voxels a side) with the anisotropic spacing (z, y, x) = (2.0, 1.0, 1.5) mm.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.distance import cdist

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.data.brats import region_dataset_json
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation import (
    METRIC_NAMES,
    LesionWiseParams,
    evaluate_arrays,
    evaluate_case,
    evaluate_folder,
    hd95,
    lesion_wise_scores,
    overlap_metrics,
    region_mask,
    surface_distances,
)
from nnunet_diffrefine.evaluation.surface import neighbour_codes, surfel_area_table

SPACING = (2.0, 1.0, 1.5)  # (z, y, x) mm
SHAPE = (20, 24, 28)
BRATS_REGIONS = [(1, 2, 3), (1, 3), (3,)]


# ----------------------------------------------------------------------------------------------
# brute-force reference implementations (written from the definitions, slow)


def corner_cube(code: int) -> np.ndarray:
    """The 2x2x2 voxels of a neighbour code: voxel (a, b, c) is bit 7 - (4a + 2b + c)."""
    cube = np.zeros((2, 2, 2), dtype=bool)
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                cube[a, b, c] = (code >> (7 - (4 * a + 2 * b + c))) & 1
    return cube


@functools.cache
def marching_cubes_area(code: int, spacing: tuple[float, float, float]) -> float:
    """Surfel area from scikit-image's Lorensen marching cubes on the code's minority corners."""
    from skimage import measure

    if code in (0, 255):
        return 0.0
    minority = code if bin(code).count("1") <= 4 else 255 - code
    verts, faces, *_ = measure.marching_cubes(
        corner_cube(minority).astype(float), 0.5, spacing=tuple(float(s) for s in spacing), method="lorensen"
    )
    return float(measure.mesh_surface_area(verts, faces))


def brute_surfels(mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Corner positions (mm) and areas (mm²) of every surfel, by looping over all grid corners."""
    padded = np.pad(mask.astype(bool), 1)
    points, areas = [], []
    for i in range(padded.shape[0] - 1):
        for j in range(padded.shape[1] - 1):
            for k in range(padded.shape[2] - 1):
                cube = padded[i : i + 2, j : j + 2, k : k + 2]
                if cube.all() or not cube.any():
                    continue
                code = sum(
                    int(cube[a, b, c]) << (7 - (4 * a + 2 * b + c))
                    for a in (0, 1)
                    for b in (0, 1)
                    for c in (0, 1)
                )
                points.append((i * spacing[0], j * spacing[1], k * spacing[2]))
                areas.append(marching_cubes_area(code, tuple(spacing)))
    return np.array(points).reshape(-1, 3), np.array(areas)


def weighted_percentile(distances: np.ndarray, areas: np.ndarray, q: float = 0.95) -> float:
    """Smallest distance whose cumulative area fraction (distances ascending) reaches q."""
    order = sorted(range(len(distances)), key=lambda i: (distances[i], areas[i]))
    fractions = np.cumsum(areas[order]) / np.sum(areas)
    for position, i in enumerate(order):
        if fractions[position] >= q:
            return float(distances[i])
    return float(distances[order[-1]])


def brute_hd95(pred: np.ndarray, ref: np.ndarray, spacing) -> float:
    pred_points, pred_areas = brute_surfels(pred, spacing)
    ref_points, ref_areas = brute_surfels(ref, spacing)
    return max(
        weighted_percentile(nearest(pred_points, ref_points), pred_areas),
        weighted_percentile(nearest(ref_points, pred_points), ref_areas),
    )


def nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from every point to the nearest target, over all pairs (in chunks of 500 points)."""
    return np.concatenate(
        [cdist(points[i : i + 500], targets).min(axis=1) for i in range(0, len(points), 500)]
    )


def brute_lesion_wise(pred, ref, spacing, dilation=3, min_volume=50.0, penalty=374.0):
    """The BraTS 2023 procedure step by step: per-lesion dilation, scipy labelling, np.isin."""
    struct = ndimage.generate_binary_structure(3, 2)
    cube = np.ones((3, 3, 3), dtype=bool)
    ref_cc, n_ref = ndimage.label(ref, cube)
    dilated_cc, n_lesions = ndimage.label(ndimage.binary_dilation(ref, struct, iterations=dilation), cube)
    lesion_map = np.zeros_like(ref_cc)
    for c in range(1, n_ref + 1):
        lesion_map[ref_cc == c] = dilated_cc[ref_cc == c][0]
    pred_cc, n_pred = ndimage.label(pred, cube)
    matched_any: set[int] = set()
    scores = []
    for k in range(1, n_lesions + 1):
        lesion = lesion_map == k
        around = ndimage.binary_dilation(lesion, struct, iterations=dilation)
        components = sorted(set(np.unique(pred_cc[around]).tolist()) - {0})
        matched_any.update(components)
        if lesion.sum() * np.prod(spacing) <= min_volume:
            continue
        matched = np.isin(pred_cc, components)
        dice = 2 * (lesion & matched).sum() / (lesion.sum() + matched.sum())
        scores.append((dice, hd95(matched, lesion, spacing) if components else penalty))
    num_fp = n_pred - len(matched_any)
    scores += [(0.0, penalty)] * num_fp
    if not scores:
        return 1.0, 0.0, 0, 0
    return (
        float(np.mean([s[0] for s in scores])),
        float(np.mean([s[1] for s in scores])),
        len(scores) - num_fp,
        num_fp,
    )


def random_blobs(seed: int, shape=SHAPE, sigma: float = 2.0, level: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field > level * field.std()


def box(shape, z, y, x) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[z[0] : z[1], y[0] : y[1], x[0] : x[1]] = True
    return mask


# ----------------------------------------------------------------------------------------------
# surfels and HD95


def test_surfel_areas_are_the_marching_cubes_areas_and_monais_table():
    from monai.metrics.utils import create_table_neighbour_code_to_surface_area

    table = surfel_area_table(SPACING)
    expected = np.array([marching_cubes_area(code, SPACING) for code in range(256)])
    np.testing.assert_allclose(table, expected, rtol=1e-12, atol=1e-12)
    monai_table = create_table_neighbour_code_to_surface_area(SPACING)[0].numpy()
    np.testing.assert_allclose(table, monai_table, rtol=1e-6)


def test_neighbour_codes_match_an_explicit_loop():
    mask = random_blobs(1, shape=(6, 7, 8))
    codes = neighbour_codes(mask)
    padded = np.pad(mask, 1)
    assert codes.shape == (7, 8, 9)
    for i, j, k in np.ndindex(codes.shape):
        cube = padded[i : i + 2, j : j + 2, k : k + 2]
        assert codes[i, j, k] == sum(
            int(cube[a, b, c]) << (7 - (4 * a + 2 * b + c)) for a in (0, 1) for b in (0, 1) for c in (0, 1)
        )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hd95_matches_brute_force_on_random_masks(seed):
    pred, ref = random_blobs(2 * seed), random_blobs(2 * seed + 1)
    assert pred.any() and ref.any()
    assert hd95(pred, ref, SPACING) == pytest.approx(brute_hd95(pred, ref, SPACING), rel=1e-9)
    distances = surface_distances(pred, ref, SPACING)
    ref_points, ref_areas = brute_surfels(ref, SPACING)
    np.testing.assert_allclose(np.sort(distances.ref_areas), np.sort(ref_areas), rtol=1e-12)
    np.testing.assert_allclose(np.sum(distances.ref_areas), np.sum(ref_areas), rtol=1e-12)


class PathCounter:
    """Counts the far-point paths of ``surface._distances_to`` (the real functions still run)."""

    def __init__(self, monkeypatch) -> None:
        from nnunet_diffrefine.evaluation import surface

        self.calls = {"tree": 0, "transform": 0}

        def counted(name, function):
            def wrapper(*args, **kwargs):
                self.calls[name] += 1
                return function(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(surface, "cKDTree", counted("tree", surface.cKDTree))
        monkeypatch.setattr(
            surface, "distance_transform_edt", counted("transform", surface.distance_transform_edt)
        )


def assert_every_surfel_distance_is_the_nearest_of_all_pairs(pred, ref, spacing) -> np.ndarray:
    """Checks ``surface_distances`` against all pairs; returns the prediction-to-reference distances."""
    distances = surface_distances(pred, ref, spacing)
    pred_points, _ = brute_surfels(pred, spacing)
    ref_points, _ = brute_surfels(ref, spacing)
    expected_pred_to_ref = nearest(pred_points, ref_points)
    np.testing.assert_allclose(np.sort(distances.pred_to_ref), np.sort(expected_pred_to_ref), rtol=1e-12)
    np.testing.assert_allclose(
        np.sort(distances.ref_to_pred), np.sort(nearest(ref_points, pred_points)), rtol=1e-12
    )
    return expected_pred_to_ref


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5), (5.0, 0.5, 1.2)])
def test_every_surfel_distance_matches_all_pairs_near_and_far(spacing, monkeypatch):
    # near surfels are answered by the window lookup, far ones (the lone blob) by the k-d tree
    ref = random_blobs(11)
    pred = np.zeros_like(ref)
    pred[1:, :, 2:] = ref[:-1, :, :-2]
    pred[15:19, 2:6, 22:27] = True
    from nnunet_diffrefine.evaluation.surface import _LOOKUP_RADIUS

    paths = PathCounter(monkeypatch)
    expected_pred_to_ref = assert_every_surfel_distance_is_the_nearest_of_all_pairs(pred, ref, spacing)
    # both paths are exercised: some distances lie beyond what the window lookup can certify
    assert expected_pred_to_ref.max() > (_LOOKUP_RADIUS + 1) * min(spacing)
    assert paths.calls["tree"] >= 1 and paths.calls["transform"] == 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5)])
def test_a_noisy_prediction_far_from_the_reference_takes_the_distance_transform_and_stays_exact(
    spacing, monkeypatch
):
    # an untrained model's output: speckle over the whole grid around one small lesion; most of its
    # surfels are far from the lesion, so the window lookups would fail for nearly all of them
    rng = np.random.default_rng(5)
    pred = rng.random(SHAPE) < 0.15
    ref = box(SHAPE, (8, 12), (9, 14), (10, 15))
    paths = PathCounter(monkeypatch)
    assert_every_surfel_distance_is_the_nearest_of_all_pairs(pred, ref, spacing)
    assert paths.calls["transform"] >= 1
    assert hd95(pred, ref, spacing) == pytest.approx(brute_hd95(pred, ref, spacing), rel=1e-9)


def test_hd95_of_a_shifted_slab_is_the_shift_in_mm():
    ref = box((14, 28, 32), (4, 8), (3, 25), (3, 25))
    assert hd95(ref, ref, SPACING) == 0.0
    assert hd95(np.roll(ref, 1, axis=0), ref, SPACING) == pytest.approx(2.0)  # one voxel of 2 mm
    assert hd95(np.roll(ref, 2, axis=2), ref, SPACING) == pytest.approx(3.0)  # two voxels of 1.5 mm


def test_hd95_is_symmetric_and_invariant_to_axis_order():
    pred, ref = random_blobs(10), random_blobs(11)
    value = hd95(pred, ref, SPACING)
    assert hd95(ref, pred, SPACING) == value
    assert hd95(pred.transpose(2, 0, 1), ref.transpose(2, 0, 1), (SPACING[2], SPACING[0], SPACING[1])) == (
        pytest.approx(value, rel=1e-12)
    )


def test_hd95_empty_masks_follow_the_convention():
    empty, full = np.zeros(SHAPE, bool), box(SHAPE, (2, 6), (2, 6), (2, 6))
    assert hd95(empty, empty, SPACING) == 0.0
    assert hd95(empty, full, SPACING) == 374.0
    assert hd95(full, empty, SPACING, penalty=100.0) == 100.0
    assert math.isnan(hd95(empty, empty, SPACING, empty_convention="nan"))
    assert math.isnan(hd95(full, empty, SPACING, empty_convention="nan"))
    with pytest.raises(InputError):
        hd95(full, empty, SPACING, empty_convention="zero")


# ----------------------------------------------------------------------------------------------
# overlap metrics


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5)])
def test_nsd_equals_panopticas_on_random_masks(spacing):
    """Our NSD (scipy) against panoptica's, the official scorer's engine, at the same tolerance."""
    from panoptica.metrics.normalized_surface_dice import _compute_normalized_surface_dice

    from nnunet_diffrefine.evaluation.surface import normalized_surface_dice

    rng = np.random.default_rng(4)
    for _ in range(4):
        pred = ndimage.binary_opening(rng.random((18, 20, 22)) > 0.55)
        ref = ndimage.binary_opening(rng.random((18, 20, 22)) > 0.55)
        theirs = _compute_normalized_surface_dice(ref, pred, voxelspacing=spacing)  # tolerance min(spacing)
        assert normalized_surface_dice(pred, ref, spacing) == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5), (0.7, 1.3, 1.0)])
@pytest.mark.parametrize("tolerance", [None, 1.0, 2.0, 2.5, 4.1])
def test_nsd_equals_the_distance_transform_definition(spacing, tolerance):
    """The offset lookup against the brute-force definition: the Euclidean distance transform of the
    other border over the whole box, thresholded at the tolerance."""
    from nnunet_diffrefine.evaluation.surface import normalized_surface_dice

    def by_distance_transform(pred, ref):
        tol = min(spacing) if tolerance is None else tolerance
        cross = ndimage.generate_binary_structure(3, 1)
        borders = [m ^ ndimage.binary_erosion(m, structure=cross) for m in (pred, ref)]
        shares = [
            np.mean(ndimage.distance_transform_edt(~other, sampling=spacing)[mine] <= tol)
            for mine, other in (borders, borders[::-1])
        ]
        return (shares[0] + shares[1]) / 2

    rng = np.random.default_rng(7)
    for _ in range(3):
        pred = ndimage.binary_opening(rng.random((20, 18, 24)) > 0.6)
        ref = ndimage.binary_opening(rng.random((20, 18, 24)) > 0.5)
        ours = normalized_surface_dice(pred, ref, spacing, tolerance_mm=tolerance)
        assert ours == pytest.approx(by_distance_transform(pred, ref), abs=1e-12)


def test_nsd_known_answers():
    from nnunet_diffrefine.evaluation.surface import normalized_surface_dice

    cube = np.zeros((12, 12, 12), bool)
    cube[3:8, 3:8, 3:8] = True
    assert normalized_surface_dice(cube, cube, (1.0, 1.0, 1.0)) == 1.0
    assert normalized_surface_dice(np.roll(cube, 1, axis=0), cube, (1.0, 1.0, 1.0)) == 1.0  # within 1 mm
    assert normalized_surface_dice(np.roll(cube, 3, axis=0), cube, (1.0, 1.0, 1.0)) < 1.0
    empty = np.zeros_like(cube)
    assert normalized_surface_dice(empty, empty, (1, 1, 1)) == 1.0
    assert math.isnan(normalized_surface_dice(empty, empty, (1, 1, 1), empty_convention="nan"))
    assert normalized_surface_dice(empty, cube, (1, 1, 1)) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_overlap_metrics_match_voxel_counting(seed):
    pred, ref = random_blobs(seed), random_blobs(seed + 7)
    tp = fp = fn = tn = 0
    for p, r in zip(pred.ravel().tolist(), ref.ravel().tolist()):
        tp += p and r
        fp += p and not r
        fn += r and not p
        tn += not p and not r
    m = overlap_metrics(pred, ref)
    assert (m["TP"], m["FP"], m["FN"], m["TN"], m["n_pred"], m["n_ref"]) == (tp, fp, fn, tn, tp + fp, tp + fn)
    assert m["Dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["IoU"] == pytest.approx(tp / (tp + fp + fn))
    assert m["Sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["Precision"] == pytest.approx(tp / (tp + fp))


def test_overlap_empty_masks_follow_the_convention():
    empty, full = np.zeros(SHAPE, bool), box(SHAPE, (2, 6), (2, 6), (2, 6))
    both = overlap_metrics(empty, empty)
    assert (both["Dice"], both["IoU"], both["Sensitivity"], both["Precision"]) == (1.0, 1.0, 1.0, 1.0)
    one = overlap_metrics(empty, full)
    assert (one["Dice"], one["IoU"], one["Sensitivity"], one["Precision"]) == (0.0, 0.0, 0.0, 0.0)
    nan = overlap_metrics(empty, empty, empty_convention="nan")
    assert all(math.isnan(nan[k]) for k in ("Dice", "IoU", "Sensitivity", "Precision"))
    nan_one = overlap_metrics(empty, full, empty_convention="nan")
    assert nan_one["Dice"] == 0.0 and nan_one["Sensitivity"] == 0.0 and math.isnan(nan_one["Precision"])


def test_region_mask_matches_nnunet():
    from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

    seg = np.random.default_rng(0).integers(0, 4, size=(6, 7, 8)).astype(np.uint8)
    for region in [1, 3, (1, 2, 3), (1, 3), (3,)]:
        np.testing.assert_array_equal(region_mask(seg, region), region_or_label_to_mask(seg, region))


# ----------------------------------------------------------------------------------------------
# lesion-wise


SPACE = (30, 40, 40)


def test_lesion_wise_two_lesions_one_missed():
    a, b = box(SPACE, (3, 9), (3, 11), (3, 11)), box(SPACE, (18, 26), (25, 35), (25, 35))
    result = lesion_wise_scores(a, a | b, SPACING)
    assert (result.num_lesions, result.num_fp) == (2, 0)
    assert result.dice == pytest.approx(0.5)
    assert result.hd95 == pytest.approx(374.0 / 2)
    assert sorted(lesion.dice for lesion in result.lesions) == [0.0, 1.0]


def test_lesion_wise_false_positive_component():
    a, fp = box(SPACE, (3, 9), (3, 11), (3, 11)), box(SPACE, (20, 24), (30, 34), (30, 34))
    result = lesion_wise_scores(a | fp, a, SPACING)
    assert (result.num_lesions, result.num_fp) == (1, 1)
    assert result.dice == pytest.approx(0.5)
    assert result.hd95 == pytest.approx(187.0)


def test_lesion_wise_pieces_within_the_dilation_merge_into_one_lesion():
    a = box(SPACE, (10, 16), (5, 12), (5, 12))
    near = box(SPACE, (10, 16), (5, 12), (16, 22))  # 4 voxels apart along x: dilations (3 + 3) overlap
    far = box(SPACE, (10, 16), (5, 12), (26, 32))  # 14 voxels from a, 4 from near: merges with near only
    merged = lesion_wise_scores(a, a | near, SPACING)
    assert (merged.num_lesions, merged.num_fp) == (1, 0)
    expected_dice = 2 * a.sum() / (a.sum() + (a | near).sum())
    assert merged.dice == pytest.approx(expected_dice)
    assert merged.hd95 == pytest.approx(hd95(a, a | near, SPACING))
    apart = lesion_wise_scores(a, a | box(SPACE, (10, 16), (5, 12), (20, 26)), SPACING)  # 8 voxels apart
    assert apart.num_lesions == 2
    assert lesion_wise_scores(a, a | near | far, SPACING).num_lesions == 1  # chained merging


def test_lesion_wise_empty_masks():
    empty, a = np.zeros(SPACE, bool), box(SPACE, (3, 9), (3, 11), (3, 11))
    both = lesion_wise_scores(empty, empty, SPACING)
    assert (both.dice, both.hd95, both.num_lesions, both.num_fp) == (1.0, 0.0, 0, 0)
    missed = lesion_wise_scores(empty, a, SPACING)
    assert (missed.dice, missed.hd95, missed.num_lesions, missed.num_fp) == (0.0, 374.0, 1, 0)
    only_fp = lesion_wise_scores(a, empty, SPACING)
    assert (only_fp.dice, only_fp.hd95, only_fp.num_lesions, only_fp.num_fp) == (0.0, 374.0, 0, 1)
    nan_both = lesion_wise_scores(empty, empty, SPACING, empty_convention="nan")
    assert math.isnan(nan_both.dice) and math.isnan(nan_both.hd95)
    nan_missed = lesion_wise_scores(empty, a, SPACING, empty_convention="nan")
    assert nan_missed.dice == 0.0 and math.isnan(nan_missed.hd95)


def test_lesion_wise_nan_convention_averages_hd95_over_matched_lesions():
    a, b = box(SPACE, (3, 9), (3, 11), (3, 11)), box(SPACE, (18, 26), (25, 35), (25, 35))
    shifted = np.roll(a, 1, axis=0)
    result = lesion_wise_scores(shifted, a | b, SPACING, empty_convention="nan")
    assert result.hd95 == pytest.approx(hd95(shifted, a, SPACING))
    assert result.dice == pytest.approx(overlap_metrics(shifted, a)["Dice"] / 2)


def test_lesion_wise_small_lesion_is_left_out():
    a = box(SPACE, (3, 9), (3, 11), (3, 11))
    small = box(SPACE, (20, 22), (30, 32), (30, 32))  # 8 voxels of 3 mm³ = 24 mm³ <= 50 mm³
    missed_small = lesion_wise_scores(a, a | small, SPACING)
    assert (missed_small.dice, missed_small.hd95, missed_small.num_lesions, missed_small.num_fp) == (
        1.0,
        0.0,
        1,
        0,
    )
    assert [lesion.kept for lesion in missed_small.lesions].count(False) == 1
    found_small = lesion_wise_scores(a | small, a | small, SPACING)  # matched to a small lesion: not an FP
    assert (found_small.dice, found_small.num_lesions, found_small.num_fp) == (1.0, 1, 0)
    kept = lesion_wise_scores(a, a | small, SPACING, LesionWiseParams(min_volume_mm3=10.0))
    assert kept.num_lesions == 2 and kept.dice == pytest.approx(0.5)


@pytest.mark.parametrize(("seed", "dilation"), [(0, 1), (1, 2), (2, 3)])
def test_lesion_wise_matches_the_brats_procedure_on_random_masks(seed, dilation):
    # many small blobs: lesions of every size, missed ones, false positives, merges
    pred = random_blobs(100 + seed, shape=SPACE, sigma=1.5, level=2.2)
    overlapping = np.roll(pred, 1, axis=0) & random_blobs(300 + seed, shape=SPACE, level=-1.0)
    ref = random_blobs(200 + seed, shape=SPACE, sigma=1.5, level=2.2) | overlapping
    result = lesion_wise_scores(pred, ref, SPACING, LesionWiseParams(dilation=dilation))
    dice, hd, num_lesions, num_fp = brute_lesion_wise(pred, ref, SPACING, dilation=dilation)
    assert (result.num_lesions, result.num_fp) == (num_lesions, num_fp)
    assert num_fp > 0 and len(result.lesions) > result.num_lesions  # FPs and left-out small lesions occur
    assert result.dice == pytest.approx(dice, rel=1e-12)
    assert result.hd95 == pytest.approx(hd, rel=1e-12)


def test_evaluate_arrays_reports_every_metric_per_region():
    ref = np.zeros(SPACE, np.uint8)
    ref[5:15, 5:20, 5:20] = 2
    ref[7:13, 8:16, 8:16] = 1
    ref[8:12, 10:14, 10:14] = 3
    pred = np.roll(ref, 1, axis=1)
    results = evaluate_arrays(pred, ref, SPACING, BRATS_REGIONS)
    assert list(results) == BRATS_REGIONS
    for region, metrics in results.items():
        assert tuple(metrics) == METRIC_NAMES
        mask_p, mask_r = region_mask(pred, region), region_mask(ref, region)
        assert metrics["HD95"] == hd95(mask_p, mask_r, SPACING)
        assert metrics["TN"] == overlap_metrics(mask_p, mask_r)["TN"]
        assert metrics["Volume_ref_cm3"] == pytest.approx(mask_r.sum() * 3.0 / 1000)


# ----------------------------------------------------------------------------------------------
# folders, summary.json, CSV, CLI


def nested_labels(seed: int, shape=SHAPE) -> np.ndarray:
    """Edema box around a core box (1) around an enhancing box (3), position varied by ``seed``."""
    rng = np.random.default_rng(seed)
    z, y, x = (int(v) for v in rng.integers(0, 3, size=3))
    seg = np.zeros(shape, np.uint8)
    seg[3 + z : 15 + z, 3 + y : 18 + y, 4 + x : 22 + x] = 2
    seg[5 + z : 12 + z, 6 + y : 14 + y, 8 + x : 17 + x] = 1
    seg[7 + z : 10 + z, 8 + y : 12 + y, 10 + x : 14 + x] = 3
    return seg


def write_seg(path: Path, seg: np.ndarray, spacing_zyx=SPACING) -> None:
    image = sitk.GetImageFromArray(seg.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    image.SetOrigin((10.0, -20.0, 5.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path, Path]:
    """labelsTs with three cases, predictions (case B without ET, case C missing ET in both), dataset.json."""
    gt, pred = tmp_path / "labelsTs", tmp_path / "pred"
    for i, case in enumerate(("A", "B", "C")):
        ref = nested_labels(i)
        guess = np.roll(ref, 1, axis=2)
        if case == "B":
            guess[guess == 3] = 1
        if case == "C":
            ref[ref == 3] = 1
            guess[guess == 3] = 1
        write_seg(gt / f"BraTS-GLI-0000{i}-000.nii.gz", ref)
        write_seg(pred / f"BraTS-GLI-0000{i}-000.nii.gz", guess)
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps(region_dataset_json(3, "Tiny")))
    return gt, pred, dataset_json


def test_summary_json_is_read_by_nnunet_and_agrees_with_its_metrics(folders):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics, load_summary_json
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    gt, pred, dataset_json = folders
    returned = evaluate_folder(gt, pred, dataset_json, empty_convention="nan", progress=False)
    summary = load_summary_json(str(pred / "summary.json"))
    assert set(summary) == {"metric_per_case", "mean", "foreground_mean", "missing_predictions", "settings"}
    assert list(summary["mean"]) == BRATS_REGIONS
    assert summary["missing_predictions"] == []
    assert set(summary["foreground_mean"]) == set(METRIC_NAMES)
    assert summary["settings"]["region_names"] == {"(1, 2, 3)": "WT", "(1, 3)": "TC", "(3,)": "ET"}
    for case, ours in zip(summary["metric_per_case"], returned["metric_per_case"]):
        theirs = compute_metrics(
            case["reference_file"], case["prediction_file"], SimpleITKIO(), BRATS_REGIONS
        )
        assert case["prediction_file"] == theirs["prediction_file"]
        assert list(case["metrics"]) == BRATS_REGIONS
        for region in BRATS_REGIONS:
            assert set(case["metrics"][region]) == set(METRIC_NAMES)
            for name, value in theirs["metrics"][region].items():
                np.testing.assert_equal(case["metrics"][region][name], value)
                np.testing.assert_equal(ours["metrics"][region][name], value)
    et = [c["metrics"][(3,)] for c in summary["metric_per_case"]]
    assert math.isnan(et[2]["Dice"]) and math.isnan(et[2]["HD95"])  # both empty
    assert et[1]["Dice"] == 0.0 and math.isnan(et[1]["HD95"])  # prediction empty
    assert summary["mean"][(3,)]["Dice"] == pytest.approx(et[0]["Dice"] / 2)  # nanmean


def test_brats_convention_csv_and_label_based_keys(folders, tmp_path):
    gt, pred, dataset_json = folders
    out = tmp_path / "results" / "brats.json"
    summary = evaluate_folder(gt, pred, dataset_json, output_file=out, progress=False)
    et = [c["metrics"][(3,)] for c in summary["metric_per_case"]]
    assert (et[2]["Dice"], et[2]["HD95"], et[2]["LesionWise_Dice"], et[2]["LesionWise_HD95"]) == (
        1.0,
        0.0,
        1.0,
        0.0,
    )
    assert (et[1]["Dice"], et[1]["HD95"], et[1]["LesionWise_Dice"], et[1]["LesionWise_HD95"]) == (
        0.0,
        374.0,
        0.0,
        374.0,
    )
    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and list(rows[0]) == ["case", "region", *METRIC_NAMES]
    assert [(r["case"], r["region"]) for r in rows[:3]] == [
        ("BraTS-GLI-00000-000", n) for n in ("WT", "TC", "ET")
    ]
    assert float(rows[4]["HD95"]) == summary["metric_per_case"][1]["metrics"][(1, 3)]["HD95"]

    labels = {"background": 0, "NC": 1, "ED": 2, "ET": 3}
    by_label = evaluate_folder(
        gt,
        pred,
        {"labels": labels, "file_ending": ".nii.gz"},
        output_file=tmp_path / "l.json",
        progress=False,
    )
    assert list(by_label["mean"]) == [1, 2, 3]
    on_disk = json.loads((tmp_path / "l.json").read_text())
    assert list(on_disk["mean"]) == ["1", "2", "3"]
    assert sorted(on_disk) == [
        "foreground_mean",
        "mean",
        "metric_per_case",
        "missing_predictions",
        "settings",
    ]


def test_missing_prediction_is_scored_empty_and_reported(folders, capsys):
    gt, pred, dataset_json = folders
    (pred / "BraTS-GLI-00001-000.nii.gz").unlink()
    summary = evaluate_folder(gt, pred, dataset_json, progress=False)
    assert summary["missing_predictions"] == ["BraTS-GLI-00001-000"]
    assert "BraTS-GLI-00001-000" in capsys.readouterr().out
    missing = summary["metric_per_case"][1]["metrics"][(1, 2, 3)]
    assert (missing["Dice"], missing["HD95"], missing["n_pred"], missing["LesionWise_HD95"]) == (
        0.0,
        374.0,
        0,
        374.0,
    )
    assert json.loads((pred / "summary.json").read_text())["missing_predictions"] == ["BraTS-GLI-00001-000"]


def test_geometry_mismatch_and_unknown_labels_are_errors(folders):
    gt, pred, dataset_json = folders
    write_seg(pred / "BraTS-GLI-00002-000.nii.gz", nested_labels(2), spacing_zyx=(2.0, 1.0, 1.0))
    with pytest.raises(InputError, match=r"case BraTS-GLI-00002-000\.nii\.gz: .* differ in spacing"):
        evaluate_folder(gt, pred, dataset_json, progress=False)
    assert not (pred / "summary.json").exists()
    bad = nested_labels(2)
    bad[0, 0, 0] = 5
    write_seg(pred / "BraTS-GLI-00002-000.nii.gz", bad)
    with pytest.raises(InputError, match=r"BraTS-GLI-00002-000\.nii\.gz: unknown label values \[5\]"):
        evaluate_folder(gt, pred, dataset_json, progress=False)


@pytest.mark.parametrize("what", ["size", "origin", "direction"])
def test_evaluate_case_names_the_geometry_property_that_differs(tmp_path, what):
    ref = nested_labels(0)
    write_seg(tmp_path / "CASE.nii.gz", ref)
    image = sitk.GetImageFromArray(ref[:-1] if what == "size" else ref)
    image.SetSpacing(tuple(reversed(SPACING)))
    image.SetOrigin((10.0, -20.0, 5.5) if what == "origin" else (10.0, -20.0, 5.0))
    if what == "direction":
        image.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    (tmp_path / "pred").mkdir()
    sitk.WriteImage(image, str(tmp_path / "pred" / "CASE.nii.gz"))
    with pytest.raises(InputError, match=f"case CASE.nii.gz: .* differ in {what}"):
        evaluate_case(tmp_path / "CASE.nii.gz", tmp_path / "pred" / "CASE.nii.gz", BRATS_REGIONS)
    with pytest.raises(InputError, match="does not exist"):
        evaluate_case(tmp_path / "CASE.nii.gz", tmp_path / "nothing.nii.gz", BRATS_REGIONS)


def test_worker_processes_give_the_same_results(folders, tmp_path):
    gt, pred, dataset_json = folders
    one = evaluate_folder(gt, pred, dataset_json, output_file=tmp_path / "one.json", progress=False)
    two = evaluate_folder(
        gt, pred, dataset_json, output_file=tmp_path / "two.json", num_processes=2, progress=False
    )
    assert (tmp_path / "one.json").read_text() == (tmp_path / "two.json").read_text()
    assert one["mean"] == two["mean"]


def test_cli_evaluate_end_to_end(folders, tmp_path, capsys):
    gt, pred, dataset_json = folders
    code = main(
        [
            "evaluate",
            str(gt),
            str(pred),
            "-djfile",
            str(dataset_json),
            "-np",
            "1",
            "--lesion-min-volume",
            "10",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "WT" in out and "summary.json" in out
    summary = json.loads((pred / "summary.json").read_text())
    assert summary["settings"]["lesion_min_volume_mm3"] == 10.0
    assert (pred / "summary.csv").is_file()

    out_file = tmp_path / "nan.json"
    args = ["evaluate", str(gt), str(pred), "-djfile", str(dataset_json), "-o", str(out_file), "-np", "1"]
    assert main([*args, "--empty-convention", "nan"]) == 0
    assert json.loads(out_file.read_text())["settings"]["empty_convention"] == "nan"
    before = out_file.read_bytes()
    capsys.readouterr()
    assert main(args) == 1  # an existing summary is not replaced without --overwrite
    assert "nan.json exists; pass --overwrite" in capsys.readouterr().err and out_file.read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    assert json.loads(out_file.read_text())["settings"]["empty_convention"] == "brats"

    assert main(["evaluate", str(gt), str(tmp_path / "nowhere"), "-djfile", str(dataset_json)]) == 1
    assert "does not exist" in capsys.readouterr().err
