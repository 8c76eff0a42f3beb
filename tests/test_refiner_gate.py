"""The validation gate: a refiner is applied only where cross-validated cases show a gain.

Known answers for the decision (a channel that every case improves is applied, one that gets worse or
changes by noise is not, nor one whose Dice gain comes with a worse HD95), the blend itself, the inner
cross-validation (every case refined by a refiner that never saw it), and ``refine_preprocessed``
applying the gate per channel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from refiner_cases import LABELS, REGIONS, sphere_case

from nnunet_diffrefine.evaluation.surface import hd95
from nnunet_diffrefine.refine.gate import (
    ALL_CLASSES,
    BLENDS,
    Gate,
    blend_gains,
    blend_hd95_changes,
    channel_dice,
    decide_gate,
)
from nnunet_diffrefine.refine.registry import create_refiner, refiner_settings
from nnunet_diffrefine.refine.run import refine_preprocessed
from nnunet_diffrefine.refine.train import cross_validated_gains


def _case(rng: np.random.Generator, shape=(3, 12, 12, 12)):
    target = (rng.random(shape) < 0.3).astype(np.float32)
    prior = np.where(rng.random(shape) < 0.2, 1 - target, target).astype(np.float32)  # 20 % of voxels wrong
    return prior, target


def test_channel_dice_and_blend_gains_match_a_direct_computation():
    rng = np.random.default_rng(0)
    prior, target = _case(rng)
    refined = target.copy()
    refined[1] = prior[1]  # channel 1: the refiner changes nothing
    gains = blend_gains(prior, refined, target, True)
    assert gains.shape == (len(BLENDS), 3)
    for j, lam in enumerate(BLENDS):
        blend = (1 - lam) * prior + lam * refined
        for c in range(3):
            p, t = blend[c] > 0.5, target[c] > 0.5
            q = prior[c] > 0.5
            direct = 2 * (p & t).sum() / (p.sum() + t.sum()) - 2 * (q & t).sum() / (q.sum() + t.sum())
            assert gains[j, c] == pytest.approx(direct)
    assert np.all(gains[:, 1] == 0) and gains[0].max() == 0 == gains[0].min()
    assert channel_dice(target, target, True) == [1.0, 1.0, 1.0]
    assert channel_dice(np.zeros_like(target), np.zeros_like(target), True) == [1.0, 1.0, 1.0]


def test_the_gate_applies_the_refiner_only_where_every_case_shows_a_gain():
    rng = np.random.default_rng(1)
    gains = {}
    for i in range(12):
        prior, target = _case(rng)
        refined = prior.copy()
        refined[0] = target[0]  # channel 0: repaired on every case
        refined[1] = 1 - target[1]  # channel 1: made worse
        refined[2] = np.where(rng.random(target[2].shape) < 0.5, target[2], 1 - target[2])  # noise
        gains[f"c{i}"] = blend_gains(prior, refined, target, True)
    gate = decide_gate(gains, True)
    assert gate.blends["0"] > 0 and gate.blends["1"] == 0.0 and gate.blends["2"] == 0.0
    ev = gate.evidence["0"]
    assert ev["ci95"][str(gate.blends["0"])][0] > 0 and len(ev["cases"]) == 12
    chosen = gate.blends["0"]
    assert ev["mean"][str(chosen)] == max(v for k, v in ev["mean"].items() if ev["ci95"][k][0] > 0)
    assert all(len(v) == 12 for v in ev["gains"].values())
    restored = Gate.from_json(gate.to_json())
    assert restored == gate
    lines = gate.describe({"0": "WT", "1": "TC", "2": "ET"})
    assert lines[0].startswith("WT: applied with lambda") and lines[1].startswith("TC: not applied")


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_blend_hd95_changes_are_each_blends_hd95_minus_the_priors():
    shape, spacing = (24, 24, 24), (2.0, 1.0, 1.5)
    tumour = _ball(shape, (8, 12, 12), 5)
    target = np.stack([tumour, tumour, np.zeros(shape, bool)]).astype(np.float32)
    prior = target.copy()
    prior[:, 10:] = 0  # the prior misses the tumour's upper part
    refined = target.copy()
    refined[0, 20:23, 2:5, 2:5] = 1  # channel 0: the missing part and a false blob far from the tumour
    refined[1] = 0.3 * target[1] + 0.7 * prior[1]  # channel 1: half way (only lambda 1 crosses 0.5)
    changes = blend_hd95_changes(prior, refined, target, True, spacing)
    assert changes.shape == (len(BLENDS), 3)
    base = [hd95(prior[c] > 0.5, target[c] > 0.5, spacing, "nan") for c in range(2)]
    for j, lam in enumerate(BLENDS):
        blend = (1 - lam) * prior + lam * refined
        for c in range(2):
            assert changes[j, c] == pytest.approx(hd95(blend[c] > 0.5, target[c] > 0.5, spacing) - base[c])
    assert np.isnan(changes[:, 2]).all(), "an empty reference leaves HD95 undefined: Dice judges it"
    gains = blend_gains(prior, refined, target, True)
    assert gains[-1, 0] > 0 and changes[-1, 0] > 10, "a Dice gain bought with a far blob"
    assert changes[0].tolist()[:2] == [0.0, 0.0]


def test_a_dice_gain_that_worsens_hd95_beyond_the_tolerance_is_not_applied():
    cases = [f"c{i}" for i in range(10)]
    gains = {c: np.array([[0.0, 0.0], [0.02, 0.02], [0.04, 0.04], [0.05, 0.05], [0.06, 0.06]]) for c in cases}
    worse = {c: np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [3.0, 1.0], [8.0, 1.5]]) for c in cases}
    gate = decide_gate(gains, True, hd95_changes=worse, hd95_tolerance_mm=2.0)
    # channel 0: lambda 0.75 and 1 gain most Dice but are 3 and 8 mm worse: 0.5 (+1 mm) is kept;
    # channel 1: every HD95 change is within 2 mm: lambda 1
    assert gate.blends == {"0": 0.5, "1": 1.0}
    assert gate.evidence["0"]["hd95_mean"]["1.0"] == pytest.approx(8.0)
    assert gate.evidence["0"]["hd95_change"]["0.75"] == [3.0] * 10
    far = {
        c: np.array([[0.0, 0.0], [4.0, np.nan], [4.0, np.nan], [4.0, np.nan], [4.0, np.nan]]) for c in cases
    }
    refused = decide_gate(gains, True, hd95_changes=far, hd95_tolerance_mm=2.0)
    assert refused.blends == {"0": 0.0, "1": 1.0}, "undefined HD95 changes leave the decision to Dice"
    line = refused.describe({"0": "WT", "1": "TC"})[0]
    assert line.startswith("WT: not applied (prior kept): its HD95 is worse by more than 2 mm"), line
    assert "HD95 +4.00 mm" in line
    assert decide_gate(gains, True).blends == {"0": 1.0, "1": 1.0}, "without HD95 changes Dice decides"
    assert Gate.from_json(refused.to_json()) == refused


def test_one_improving_case_among_others_that_are_equal_is_not_enough():
    rng = np.random.default_rng(2)
    gains = {}
    for i in range(8):
        prior, target = _case(rng)
        refined = target if i == 0 else prior
        gains[f"c{i}"] = blend_gains(prior, refined, target, True)
    gate = decide_gate(gains, True)
    assert not gate.applied_anywhere, "a mean gain whose lower bound is 0 keeps the prior"


def test_five_cases_that_all_gain_are_too_few_six_are_enough():
    gain = np.array([[0.0], [0.01], [0.02], [0.03], [0.04]])  # every lambda > 0 gains, on every case
    few = decide_gate({f"c{i}": gain + 0.001 * i for i in range(5)}, True)
    assert few.blends == {"0": 0.0}
    assert few.evidence["0"]["ci95"]["1.0"][0] > 0, "the bootstrap bound alone would have applied it"
    line = few.describe({"0": "WT"})[0]
    assert line.startswith("WT: not applied (prior kept): 5 cases are too few to show a gain (at least 6)"), (
        line
    )
    assert decide_gate({f"c{i}": gain + 0.001 * i for i in range(6)}, True).blends == {"0": 1.0}
    assert decide_gate({"c0": gain}, True, min_cases=1).blends == {"0": 1.0}, "a setting, explicit"
    assert Gate.from_json(few.to_json()) == few


def test_the_blend_is_per_channel_and_label_based_outputs_share_one_weight():
    prior = np.full((3, 2, 2, 2), 0.2, np.float32)
    refined = np.full((3, 2, 2, 2), 0.6, np.float32)
    gate = Gate({"0": 1.0, "1": 0.0, "2": 0.5}, {}, True)
    out = gate.apply(prior, refined)
    assert np.allclose(out[0], 0.6) and np.array_equal(out[1], prior[1]) and np.allclose(out[2], 0.4)
    labels = Gate({ALL_CLASSES: 0.25}, {}, False)
    p = np.full((4, 2, 2, 2), 0.25, np.float32)
    r = np.zeros_like(p)
    r[1] = 1.0
    assert np.allclose(labels.apply(p, r).sum(0), 1.0)


def test_refine_preprocessed_keeps_the_prior_where_the_gate_says_so():
    case = sphere_case(REGIONS, 0)
    refiner = create_refiner(
        "corrdiff", REGIONS, refiner_settings("corrdiff", "tiny", patch_size=(16, 16, 16))
    )
    # a non-zero correction everywhere: make the decoder's last layer (zero at the identity start) random
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in list(refiner.net.vqvae.decoder.parameters())[-2:]:
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
        refiner.net.gate.bias.fill_(3.0)
    ungated, _ = refine_preprocessed([refiner], case.prior, case.image, 0, False)
    gate = Gate({"0": 0.0, "1": 1.0, "2": 0.0}, {}, True)
    gated, _ = refine_preprocessed([refiner], case.prior, case.image, 0, False, [gate])
    assert not np.allclose(ungated[1], case.prior[1]), "the refiner changes channel 1"
    assert np.array_equal(gated[0], case.prior[0]) and np.array_equal(gated[2], case.prior[2])
    assert np.array_equal(gated[1], ungated[1])


@pytest.mark.parametrize("signature", [REGIONS, LABELS], ids=["regions", "labels"])
def test_inner_cross_validation_refines_every_case_with_a_refiner_that_never_saw_it(signature, tmp_path):
    cls = type(create_refiner("ddpm", signature, refiner_settings("ddpm", "tiny", patch_size=(16, 16, 16))))
    settings = refiner_settings("ddpm", "tiny", patch_size=(16, 16, 16), gate_folds=3)
    cases = [sphere_case(signature, i) for i in range(6)]
    seen: list[set[str]] = []
    original = cls.fit

    def recording_fit(self, train, val, folder, log=print):
        seen.append({c.case_id for c in train + val})
        return original(self, train, val, folder, log=lambda _: None)

    cls.fit = recording_fit
    try:
        gains, hd95_changes = cross_validated_gains(
            cls, signature, settings, cases, tmp_path, "cpu", lambda _: None, (2.0, 1.0, 1.0)
        )
    finally:
        cls.fit = original
    assert sorted(gains) == sorted(c.case_id for c in cases)
    assert len(seen) == 3
    for i, trained_on in enumerate(seen):
        held = {c.case_id for c in sorted(cases, key=lambda c: c.case_id)[i::3]}
        assert not trained_on & held and trained_on | held == {c.case_id for c in cases}
    units = 3 if signature.regions else 1
    assert all(np.asarray(g).shape == (len(BLENDS), units) for g in gains.values())
    assert sorted(hd95_changes) == sorted(gains)
    assert all(np.asarray(h, dtype=float).shape == (len(BLENDS), units) for h in hd95_changes.values())
    # finished inner folds are read back, not retrained
    again = cross_validated_gains(
        cls, signature, settings, cases, tmp_path, "cpu", lambda _: None, (2.0, 1.0, 1.0)
    )
    assert again == (gains, hd95_changes)
