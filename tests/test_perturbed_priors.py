"""Perturbed priors (SegRefiner-style training data): each kind does what it says, crops keep their
shape and range, and the share of perturbed crops follows the setting."""

from __future__ import annotations

import numpy as np
import pytest
from refiner_cases import LABELS, REGIONS, sphere_case
from scipy import ndimage

from nnunet_diffrefine.refine import perturb
from nnunet_diffrefine.refine.patches import sample_patches, sample_slices
from nnunet_diffrefine.refine.registry import refiner_settings


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


@pytest.mark.parametrize("ndim", [2, 3])
def test_boundary_perturbation_moves_the_boundary_by_a_few_voxels(ndim):
    case = sphere_case(REGIONS, 0, size=24)
    target = case.target if ndim == 3 else case.target[:, 12]
    out = perturb._boundary(target, np.random.default_rng(0))
    assert out.shape == target.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    moved, truth = out[0] > 0.5, target[0] > 0.5
    assert not np.array_equal(moved, truth) and 0.5 < _dice(moved, truth) < 1.0
    band = ndimage.binary_dilation(truth, iterations=4) & ~ndimage.binary_erosion(truth, iterations=4)
    assert not (moved ^ truth)[~band].any(), "changes stay within 4 voxels of the true boundary"


def test_component_perturbation_drops_one_of_several_or_adds_a_blob():
    case = sphere_case(REGIONS, 0, size=24)
    truth = case.target[0] > 0.5
    for seed in range(5):
        one = perturb._components(case.target, np.random.default_rng(seed)) > 0.5
        grown = one[0] & ~ndimage.binary_dilation(truth, iterations=2)  # beyond the blur's reach
        assert grown.any() and not grown[~ndimage.binary_dilation(truth, iterations=8)].any(), (
            "a blob near it"
        )
    two = case.target.copy()
    two[:, 1:4, 1:4, 1:4] = 1.0  # a second lesion
    out = perturb._components(two, np.random.default_rng(2)) > 0.5
    assert ndimage.label(out[0])[1] == 1, "one of the two lesions dropped"


@pytest.mark.parametrize("signature", [REGIONS, LABELS], ids=["regions", "labels"])
def test_temperature_keeps_the_decision_and_changes_the_confidence(signature):
    case = sphere_case(signature, 0)
    out = perturb._temperature(case.prior, np.random.default_rng(3), signature.regions)
    assert not np.allclose(out, case.prior, atol=1e-3)
    if signature.regions:
        assert np.array_equal(out > 0.5, np.clip(case.prior, 1e-4, 1 - 1e-4) > 0.5)
    else:
        assert np.allclose(out.sum(0), 1, atol=1e-5) and np.array_equal(out.argmax(0), case.prior.argmax(0))
    kinds = {
        perturb.perturbed_prior(case.prior, case.target, np.random.default_rng(i), signature.regions)[1]
        for i in range(20)
    }
    assert kinds == (set(perturb.KINDS) if signature.regions else {"temperature"})


def test_the_share_of_perturbed_crops_follows_the_setting():
    cases = [sphere_case(REGIONS, i) for i in range(3)]
    plain = sample_patches(cases, np.random.default_rng(0), 40, (8, 8, 8), True)
    again = sample_patches(cases, np.random.default_rng(0), 40, (8, 8, 8), True, perturb=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, again)), "0: the out-of-fold priors, unchanged"
    _, prior, target = sample_patches(cases, np.random.default_rng(0), 40, (8, 8, 8), True, perturb=1.0)
    assert prior.shape == target.shape and 0 <= prior.min() and prior.max() <= 1
    slices = sample_slices(cases, np.random.default_rng(0), 2, 4, (8, 8), True, perturb=1.0)
    assert slices[1].shape == (8, 3, 8, 8)
    assert refiner_settings("corrdiff").perturbed_priors == 0.5
    assert refiner_settings("ddpm_scratch").perturbed_priors == 0.0


@pytest.mark.parametrize("sampler", ["patches", "slices"])
def test_crops_draw_their_prior_among_the_cases_priors_equally(sampler):
    import dataclasses

    case = sphere_case(REGIONS, 0, size=24)
    flat = np.full_like(case.prior, 0.2)
    case = dataclasses.replace(case, prior=flat, extra_priors=(flat + 0.1, flat + 0.2))
    rng = np.random.default_rng(0)
    if sampler == "patches":
        _, priors, _ = sample_patches([case], rng, 300, (8, 8, 8), True)
    else:
        _, priors, _ = sample_slices([case], rng, 300, 1, (8, 8), True)
    drawn = np.round(priors.reshape(len(priors), -1).mean(1), 3)
    counts = {v: int((drawn == v).sum()) for v in (0.2, 0.3, 0.4)}
    assert sum(counts.values()) == 300 and min(counts.values()) > 70, counts  # ~100 each


def test_a_case_with_one_prior_draws_no_random_number_for_it():
    from nnunet_diffrefine.refine.patches import training_prior

    case = sphere_case(REGIONS, 0, size=24)
    rng, untouched = np.random.default_rng(5), np.random.default_rng(5)
    assert training_prior(case, rng) is case.prior
    assert rng.random() == untouched.random(), "crops of runs without extra priors are as before"


def test_checkpoint_priors_name_checkpoint_files_other_than_the_final_one():
    from nnunet_diffrefine.errors import InputError

    assert refiner_settings("control", checkpoint_priors="checkpoint_best.pth").checkpoint_priors == (
        "checkpoint_best.pth"
    )
    for bad, why in (
        ("checkpoint_final.pth", "already gives the out-of-fold priors"),
        ("../x.pth", "not a checkpoint file name"),
        ("best", "not a checkpoint file name"),
    ):
        with pytest.raises(InputError, match=why):
            refiner_settings("corrdiff", checkpoint_priors=bad)
