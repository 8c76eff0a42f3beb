"""Losses that see where the prior is wrong: known answers for the weights, the weighted DiceCE equal to
the unweighted one at weight 1, and CorrDiff's balanced residual objective not solved by 0."""

from __future__ import annotations

import pytest
import torch

from nnunet_diffrefine.losses.diffusion import dice_ce, error_weights, weighted_dice_ce
from nnunet_diffrefine.refine.corrdiff import residual_l1


def test_error_weights_mark_the_band_around_the_priors_boundary_and_its_uncertain_voxels():
    prior = torch.zeros(1, 1, 16, 16, 16)
    prior[..., 4:12, 4:12, 4:12] = 1.0
    w = error_weights(prior, True, boundary_weight=2.0, uncertainty_weight=0.0, band=2)
    assert w.shape == (1, 1, 16, 16, 16)
    assert w[0, 0, 8, 8, 8] == 1.0 and w[0, 0, 0, 0, 0] == 1.0, "far from the boundary: weight 1"
    assert w[0, 0, 8, 8, 4] == 3.0 and w[0, 0, 8, 8, 2] == 3.0 and w[0, 0, 8, 8, 1] == 1.0
    assert w[0, 0, 8, 8, 5] == 3.0 and w[0, 0, 8, 8, 6] == 1.0, "two voxels on either side of it"
    unsure = torch.full((1, 1, 4, 4, 4), 0.5)
    assert torch.allclose(error_weights(unsure, True, 0.0, 2.0), torch.full((1, 1, 4, 4, 4), 3.0))


@pytest.mark.parametrize("regions", [True, False], ids=["regions", "labels"])
def test_the_weighted_dice_ce_at_weight_one_is_the_unweighted_loss(regions):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3 if regions else 4, 8, 8, 8, generator=g)
    if regions:
        target = (torch.rand(2, 3, 8, 8, 8, generator=g) > 0.6).float()
    else:
        target = (
            torch.nn.functional.one_hot(torch.randint(0, 4, (2, 8, 8, 8), generator=g), 4)
            .movedim(-1, 1)
            .float()
        )
    ones = torch.ones(2, 1, 8, 8, 8)
    assert weighted_dice_ce(logits, target, regions, ones).item() == pytest.approx(
        dice_ce(logits, target, regions).item(), rel=1e-4
    )
    assert weighted_dice_ce(logits, target, regions, None).item() == dice_ce(logits, target, regions).item()
    heavy = ones.clone()
    heavy[..., :4] = 10.0
    assert weighted_dice_ce(logits, target, regions, heavy).item() != pytest.approx(
        dice_ce(logits, target, regions).item()
    )


def test_the_balanced_residual_objective_is_not_solved_by_zero():
    residual = torch.zeros(1, 3, 20, 20, 20)
    residual[:, :, :2, :2, :2] = 0.8  # 8 of 8000 voxels need a correction
    zero = torch.zeros_like(residual)
    assert residual_l1(zero, residual, "l1").item() == pytest.approx(0.8 * 8 / 8000)
    assert residual_l1(zero, residual, "balanced").item() == pytest.approx(0.4), (
        "half the wrong voxels' error"
    )
    assert residual_l1(residual, residual, "balanced").item() == 0.0
