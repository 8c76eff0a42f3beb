"""One test per defect found in the review of the refiner layer (issue 12, B1-B7); each failed before
its fix. B6 (seeds control the weights; a resumed training equals an uninterrupted one) is checked for
every refiner in tests/test_refiner_conformance.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from refiner_cases import LABELS, REGIONS, sphere_case

from nnunet_diffrefine.refine.base import TrainingCase
from nnunet_diffrefine.refine.patches import sample_patches, sample_slices
from nnunet_diffrefine.refine.priors import PriorPrediction, read_prior_prediction, write_prior_prediction
from nnunet_diffrefine.refine.registry import create_refiner, refiner_settings
from nnunet_diffrefine.refine.run import ModelContext, prior_mismatch, to_original_grid
from nnunet_diffrefine.refine.training_loop import LATEST_FILE
from nnunet_diffrefine.utils.lr_schedule import warmup_cosine_lr


# --- B1: foreground-biased patches must find the tumor in label-based (one-hot) data too -------------
def _small_tumor_case(signature, size: int = 48) -> TrainingCase:
    labels = np.zeros((size,) * 3, np.int64)
    labels[30:34, 10:14, 20:24] = 2
    labels[31:33, 11:13, 21:23] = 3
    channels = (
        [labels > 0, labels == 3, labels == 3] if signature.regions else [labels == v for v in range(4)]
    )
    target = np.stack(channels).astype(np.float32)
    prior = target.copy()
    image = np.zeros((4, *labels.shape), np.float32)
    return TrainingCase("small", image, prior, target)


def _tumor_share(patches: np.ndarray, regions: bool) -> float:
    tumor = patches.max(1) > 0.5 if regions else patches[:, 0] < 0.5
    return float(tumor.reshape(len(patches), -1).any(1).mean())


@pytest.mark.parametrize("signature", [REGIONS, LABELS], ids=["regions", "labels"])
def test_b1_two_thirds_of_the_patches_hold_tumor_for_region_and_label_data(signature):
    case = _small_tumor_case(signature)
    rng = np.random.default_rng(0)
    _, _, targets = sample_patches([case], rng, 300, (8, 8, 8), signature.regions)
    assert 0.55 < _tumor_share(targets, signature.regions) < 0.8  # uniform sampling: about 0.02
    _, _, slices = sample_slices([case], rng, 30, 10, (8, 8), signature.regions)
    assert 0.35 < _tumor_share(slices, signature.regions) < 0.6  # 2/3 of the slices, then 2/3 of the crops


def test_b1_padding_of_label_data_is_background_not_tumor():
    case = sphere_case(LABELS, 0, size=12)
    _, priors, targets = sample_patches([case], np.random.default_rng(1), 4, (20, 20, 20), False)
    for arrays in (priors, targets):
        assert np.allclose(arrays.sum(1), 1), "one-hot everywhere, padding included"
        assert (arrays[:, 0, :2] == 1).all(), "the padded border is background"


# --- B2: the commitment loss is weighted once (lambda_vq = 0.25) -----------------------------------
def test_b2_the_vq_loss_is_the_raw_commitment_term_weighted_once_by_lambda_vq():
    refiner = create_refiner(
        "corrdiff", REGIONS, refiner_settings("corrdiff", "tiny", patch_size=(16, 16, 16))
    )
    case = sphere_case(REGIONS, 0)
    image, prior, target = (torch.from_numpy(a[None]) for a in (case.image, case.prior, case.target))
    refiner.net.eval()  # no EMA update of the codebook between the two computations
    torch.manual_seed(0)
    losses = refiner.losses(image, prior, target)
    with torch.no_grad():
        encoding = refiner.net.vqvae.encode(target - prior)
        flat = encoding.permute(0, 2, 3, 4, 1).reshape(-1, encoding.shape[1])
        codebook = refiner.net.vqvae.quantizer.quantizer.embedding.weight
        nearest = codebook[torch.cdist(flat, codebook).argmin(1)]
        commitment = F.mse_loss(nearest, flat)
    assert torch.isclose(losses["vq"].detach(), commitment, rtol=1e-4)
    expected = losses["diff"] + losses["recon"] + 0.25 * losses["vq"] + losses["seg"]
    assert torch.isclose(losses["loss"], expected)


# --- B3: priors predicted otherwise than the training priors are named and recorded ---------------
def test_b3_differences_between_training_and_inference_priors_are_named(tmp_path):
    training = PriorPrediction(True, 1, "nnU-Net final validation (out-of-fold)")
    configs = [{"training_priors": training.to_json()}] * 2
    assert prior_mismatch(configs, PriorPrediction(True, 1, "ours")) == []
    differences = prior_mismatch(configs, PriorPrediction(False, 5, "ours"))
    assert differences == [
        "test-time mirroring True in training, False here",
        "folds averaged per prior 1 in training, 5 here",
    ]
    assumed = read_prior_prediction(tmp_path, assumed_folds=5)  # an nnUNetv2_predict folder records nothing
    assert (assumed.mirroring, assumed.num_folds) == (True, 5) and "assumed" in assumed.source
    write_prior_prediction(tmp_path, PriorPrediction(False, 1, "nnU-Net predictor, fold 0"))
    assert read_prior_prediction(tmp_path, assumed_folds=5).mirroring is False
    stated = read_prior_prediction(tmp_path, assumed_folds=5, num_folds=3)
    assert (stated.mirroring, stated.num_folds, stated.source) == (False, 3, "stated on the command line")


# --- B4: CorrDiff's segmentation term sees a correction sampled as at inference ---------------------
def test_b4_the_segmentation_term_never_sees_the_true_residual():
    settings = refiner_settings("corrdiff", "tiny", patch_size=(16, 16, 16))
    case = sphere_case(REGIONS, 0)
    image, prior = torch.from_numpy(case.image[None]), torch.from_numpy(case.prior[None])
    corrections, latents = [], []
    for target in (case.target, np.ones_like(case.target)):
        refiner = create_refiner("corrdiff", REGIONS, settings)
        refiner.net.eval()
        noise = torch.Generator().manual_seed(5)  # MONAI zero-initialises the denoiser's output layer,
        decoder = list(refiner.net.vqvae.decoder.parameters())[-2:]  # the identity start the decoder's last
        with torch.no_grad():
            for p in [*refiner.net.denoiser.parameters(), *decoder]:
                p.copy_(0.1 * torch.randn(p.shape, generator=noise))
        residual = torch.from_numpy(target[None]) - prior
        latents.append(refiner.net.vqvae.quantize(refiner.net.vqvae.encode(residual))[0].detach())
        original = refiner.net.correct
        refiner.net.correct = lambda p, lg, u, r, g, f=original: (
            corrections.append(r.detach()) or f(p, lg, u, r, g)
        )
        torch.manual_seed(0)
        losses = refiner.losses(image, prior, torch.from_numpy(target[None]))
        refiner.net.zero_grad()
        losses["seg"].backward()
        grads = [p.grad.abs().sum() for p in refiner.net.denoiser.parameters() if p.grad is not None]
        assert grads and sum(grads) > 0, "L_seg trains the denoiser (through its last sampling call)"
    assert not torch.equal(latents[0], latents[1]), "the two ground truths give different true latents"
    assert torch.equal(corrections[0], corrections[1]), "the correction does not depend on the ground truth"


# --- B5: an unconditional refiner's output is free of the prior on a resampled grid -----------------
@dataclass
class _Labels:
    has_regions: bool


@dataclass
class _Plans:
    transpose_forward: tuple = (0, 1, 2)
    transpose_backward: tuple = (0, 1, 2)


@dataclass
class _Configuration:
    spacing: tuple = (2.0, 2.0, 2.0)

    @property
    def resampling_fn_probabilities(self):
        from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

        return partial(resample_data_or_seg_to_shape, is_seg=False, order=1, order_z=0, force_separate_z=None)


PROPERTIES = {
    "spacing": [1.0, 1.0, 1.0],
    "shape_before_cropping": (20, 20, 20),
    "bbox_used_for_cropping": [[2, 18], [2, 18], [2, 18]],
    "shape_after_cropping_and_before_resampling": (16, 16, 16),
}


@pytest.mark.parametrize("regions", [True, False], ids=["regions", "labels"])
def test_b5_scratch_output_is_prior_free_and_conditioned_output_corrects_the_prior(regions):
    c = 3 if regions else 4
    context = ModelContext(None, _Plans(), _Configuration(), _Labels(regions), {}, None)
    rng = np.random.default_rng(0)
    refined = rng.random((c, 8, 8, 8)).astype(np.float32)
    outputs = {}
    for uses_prior in (False, True):
        for k in range(2):
            prior = rng.random((c, 20, 20, 20)).astype(np.float32)
            prior_pre = rng.random((c, 8, 8, 8)).astype(np.float32)
            outputs[uses_prior, k] = to_original_grid(
                context, prior, prior_pre, refined, PROPERTIES, uses_prior
            )
    assert np.array_equal(outputs[False, 0], outputs[False, 1]), "scratch: nothing of the prior remains"
    assert not np.array_equal(outputs[True, 0], outputs[True, 1]), "conditioned: the prior is corrected"
    corner = outputs[False, 0][:, 0, 0, 0]
    assert np.array_equal(corner, np.zeros(c) if regions else np.eye(c)[0]), "background outside the crop box"


# --- B7: the papers' settings are the defaults, and the training loop applies them -----------------
def test_b7_defaults_are_seed_000_table_2_and_seed_002_table_1():
    ddpm, scratch = refiner_settings("ddpm"), refiner_settings("ddpm_scratch")
    assert (ddpm.learning_rate, ddpm.weight_decay, ddpm.batch_size, ddpm.patch_size) == (
        1e-4,
        1e-5,
        2,
        (96, 96, 96),
    )
    assert (ddpm.max_epochs, scratch.max_epochs, ddpm.patience, ddpm.warmup_epochs) == (1000, 300, 150, 10)
    msd = refiner_settings("medsegdiff")
    assert (msd.learning_rate, msd.weight_decay, msd.batch_size, msd.patch_size[1:]) == (
        4e-4,
        0.0,
        32,
        (128, 128),
    )
    assert (msd.max_epochs, msd.patience, msd.warmup_epochs, msd.min_learning_rate, msd.grad_clip) == (
        300,
        100,
        10,
        1e-6,
        1.0,
    )
    cd = refiner_settings("corrdiff")
    assert (cd.max_epochs, cd.patience, cd.num_train_timesteps, cd.inference_steps, cd.lambda_vq) == (
        50,
        15,
        200,
        25,
        0.25,
    )


def test_b7_the_training_loop_uses_the_refiners_optimiser_settings(tmp_path):
    settings = refiner_settings(
        "medsegdiff",
        max_epochs=3,
        iterations_per_epoch=1,
        warmup_epochs=1,
        channels=(8, 16, 16),
        patch_size=(1, 16, 16),
        batch_size=8,
        slices_per_case=4,
    )
    refiner = create_refiner("medsegdiff", REGIONS, settings)
    cases = [sphere_case(REGIONS, i) for i in range(3)]
    history = refiner.fit(cases[:2], cases[2:], tmp_path, log=lambda _: None)
    lrs = [e["lr"] for e in history["epochs"]]
    assert lrs == [warmup_cosine_lr(e, 4e-4, 3, 1, 1e-6, 1e-6) for e in range(3)] and lrs[0] == 1e-6
    group = torch.load(tmp_path / LATEST_FILE, weights_only=False)["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.0 and group["lr"] == lrs[-1]
    saved = json.loads(json.dumps(torch.load(tmp_path / LATEST_FILE, weights_only=False)["settings"]))
    assert saved["learning_rate"] == 4e-4 and saved["preset"] == "paper", "the settings are in the checkpoint"
