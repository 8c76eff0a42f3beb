"""The refiner contract, checked for every registered refiner (built-in or from an installed package).

Parametrised over :func:`available_refiners`, so a new refiner is checked without editing this file:
settings round trip and validation, output shape and range (region- and label-based), the prior left
unchanged outside the region of interest, save/load, seeded determinism of weights and samples, the
uncertainty map, and a resumed training equal to an uninterrupted one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from refiner_cases import LABELS, REGIONS, sphere_case

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.registry import available_refiners, create_refiner, load_refiner, refiner_class
from nnunet_diffrefine.refine.roi import roi_box

NAMES = available_refiners()


def tiny_settings(name: str, **changes):
    """The refiner's ``tiny`` preset on cubic patches of at least 16 voxels that its networks take."""
    cls = refiner_class(name)
    settings = cls.settings_class.from_preset("tiny")
    multiple = cls.patch_multiple_of(settings)
    side = -(-16 // multiple) * multiple
    return settings.replace(patch_size=(side, side, side), **changes)


def cases_for(name: str, signature, n: int = 3) -> list:
    side = tiny_settings(name).patch_size[0]
    return [sphere_case(signature, i, size=side) for i in range(n)]


def weights(refiner) -> dict[str, torch.Tensor]:
    net = refiner.network
    return {k: v.detach().clone() for k, v in net.state_dict().items()} if net is not None else {}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", NAMES)
def test_settings_round_trip_and_refuse_bad_values(name):
    cls = refiner_class(name).settings_class
    defaults = cls()
    assert cls.from_dict(json.loads(json.dumps(defaults.to_dict()))) == defaults
    for preset in cls.presets():
        assert cls.from_preset(preset).preset == preset
    assert all(text for _, _, text in cls.describe()), "every setting has a help text"
    with pytest.raises(InputError, match="unknown setting"):
        cls.from_dict({**defaults.to_dict(), "no_such_setting": 1})
    with pytest.raises(InputError, match="max_epochs"):
        defaults.replace(max_epochs=0)
    with pytest.raises(InputError, match="learning_rate"):
        defaults.replace(learning_rate="fast")
    with pytest.raises(InputError, match="unknown preset"):
        cls.from_preset("no_such_preset")


@pytest.mark.parametrize("signature", [REGIONS, LABELS], ids=["regions", "labels"])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape_range_and_prior_outside_the_region_of_interest(name, signature):
    case = cases_for(name, signature, 1)[0]
    refiner = create_refiner(name, signature, tiny_settings(name, num_samples=2))
    out, std = refiner.refine_with_uncertainty(case.prior, case.image, seed=1)
    assert out.shape == std.shape == case.prior.shape and out.dtype == std.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 and std.min() >= 0
    if not signature.regions:
        assert np.allclose(out.sum(0), 1, atol=1e-3)
    assert np.array_equal(refiner.refine(case.prior, case.image, seed=1), out)
    s = refiner.settings
    if refiner.uses_prior and getattr(s, "roi", False):
        box = roi_box(
            case.prior, signature.regions, s.patch_size, s.roi_threshold, s.roi_margin, s.roi_seed_threshold
        )
        outside = np.ones(case.prior.shape, bool)
        if box is not None:
            outside[(slice(None), *box)] = False
        assert np.array_equal(out[outside], case.prior[outside]), "outside the region of interest: the prior"


@pytest.mark.parametrize("name", NAMES)
def test_training_saving_loading_and_seeds_are_reproducible(name, tmp_path):
    train, val = cases_for(name, REGIONS)[:2], cases_for(name, REGIONS)[2:]
    settings = tiny_settings(name)
    first, second = create_refiner(name, REGIONS, settings), create_refiner(name, REGIONS, settings)
    assert same_weights(weights(first), weights(second)), "the seed controls the initial weights"
    if first.network is not None and any(v.abs().sum() > 0 for v in weights(first).values()):
        # (a network that starts all at zero, such as the README's one-layer example, has no random init)
        other = create_refiner(name, REGIONS, settings.replace(seed=1))
        assert not same_weights(weights(first), weights(other))
    first.fit(train, val, tmp_path / "a", log=lambda _: None)
    second.fit(train, val, tmp_path / "b", log=lambda _: None)
    assert same_weights(weights(first), weights(second)), "a seeded training is reproducible"
    first.save(tmp_path / "a")
    reloaded = load_refiner(tmp_path / "a")
    assert type(reloaded) is type(first) and reloaded.settings == first.settings
    case = val[0]
    out = first.refine(case.prior, case.image, seed=3)
    assert np.array_equal(reloaded.refine(case.prior, case.image, seed=3), out), "same seed, same output"
    assert reloaded.extra_state() == first.extra_state()
    config = json.loads((tmp_path / "a" / "refiner.json").read_text())
    assert config["refiner"] == name and config["settings"] == settings.to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_training_equals_an_uninterrupted_one(name, tmp_path):
    train, val = cases_for(name, REGIONS)[:2], cases_for(name, REGIONS)[2:]
    settings = tiny_settings(name, max_epochs=3, patience=5)
    straight = create_refiner(name, REGIONS, settings)
    if straight.network is None:
        pytest.skip(f"{name} has no weights to train")
    history = straight.fit(train, val, tmp_path / "straight", log=lambda _: None)

    class Interrupted(Exception):
        pass

    def stop_after_first_epoch(line: str) -> None:
        if " epoch 0:" in line:
            raise Interrupted

    with pytest.raises(Interrupted):
        create_refiner(name, REGIONS, settings).fit(
            train, val, tmp_path / "resumed", log=stop_after_first_epoch
        )
    messages = []
    resumed = create_refiner(name, REGIONS, settings)
    again = resumed.fit(train, val, tmp_path / "resumed", log=messages.append)
    assert any("resuming at epoch 1" in m for m in messages)
    assert [e["losses"] for e in again["epochs"]] == [e["losses"] for e in history["epochs"]]
    assert same_weights(weights(resumed), weights(straight)), "resumed = uninterrupted, bit for bit"
    with pytest.raises(InputError, match="other settings"):
        create_refiner(name, REGIONS, settings.replace(learning_rate=1e-2)).fit(
            train, val, tmp_path / "resumed", log=lambda _: None
        )


def test_identity_refiner_returns_the_prior_exactly():
    case = sphere_case(REGIONS, 0)
    out, std = create_refiner("identity", REGIONS).refine_with_uncertainty(case.prior, case.image)
    assert np.array_equal(out, case.prior) and not std.any()


@pytest.mark.parametrize("signature", [REGIONS, LABELS], ids=["regions", "labels"])
@pytest.mark.parametrize("name", [n for n in NAMES if refiner_class(n).uses_prior])
def test_an_untrained_conditioned_refiner_returns_the_prior(name, signature):
    """Identity start: every conditioned refiner, before any training, gives back its prior (to 1e-6),
    also where the prior is within the logit clip of 0 or 1 (1e-6, 1 - 1e-7)."""
    case = cases_for(name, signature, 1)[0]
    prior = case.prior.copy()
    if signature.regions:
        prior[:, prior.shape[1] // 2] = 1e-6
        prior[:, :, prior.shape[2] // 2] = 1 - 1e-7
    settings = tiny_settings(name)
    if hasattr(settings, "roi"):
        settings = settings.replace(roi=False)  # the whole volume goes through the networks
    out = create_refiner(name, signature, settings).refine(prior, case.image, seed=0)
    assert np.abs(out - prior).max() < 1e-6
