"""The refinement benchmark's protocol and statistics: K-fold splits, the out-of-fold check, paired
differences and the uncertainty AUROC (against brute-force references)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nnunet_diffrefine.benchmark.paired import auroc, bootstrap_ci, paired_difference, wilcoxon_p
from nnunet_diffrefine.benchmark.protocol import (
    kfold_splits,
    protocol_problems,
    refiner_problems,
    write_splits,
)
from nnunet_diffrefine.benchmark.scores import per_case_scores
from nnunet_diffrefine.errors import InputError

CASES = [f"BraTS-GLI-{i:05d}-000" for i in range(9)]
TEST = {"BraTS-GLI-00100-000", "BraTS-GLI-00101-000"}


def test_kfold_splits_partition_the_cases_and_every_row_sees_the_same_ones(tmp_path):
    splits = kfold_splits(list(reversed(CASES)), 3)
    assert [sorted(s["val"]) for s in splits] == [CASES[0::3], CASES[1::3], CASES[2::3]]
    for s in splits:
        assert sorted(s["train"] + s["val"]) == CASES and not set(s["train"]) & set(s["val"])
    assert write_splits(tmp_path, splits) == tmp_path / "splits_final.json"
    write_splits(tmp_path, splits)  # the same again: fine
    with pytest.raises(InputError, match="other splits"):
        write_splits(tmp_path, kfold_splits(CASES, 2))
    with pytest.raises(InputError, match="folds"):
        kfold_splits(CASES[:2], 3)


def _out_of_fold_folders(tmp_path, splits, moved: dict[str, int] | None = None) -> list[str]:
    """``model/fold_k/validation/CASE.npz`` for every validation case (``moved``: case -> wrong fold)."""
    sources = []
    for k in range(len(splits)):
        folder = tmp_path / "model" / f"fold_{k}" / "validation"
        folder.mkdir(parents=True)
        sources.append(str(folder))
    for k, s in enumerate(splits):
        for case in s["val"]:
            fold = (moved or {}).get(case, k)
            (tmp_path / "model" / f"fold_{fold}" / "validation" / f"{case}.npz").write_bytes(b"")
    return sources


def _config(sources, cases) -> dict:
    return {"out_of_fold_sources": sources, "training_cases": cases[:-2], "validation_cases": cases[-2:]}


def test_a_refiner_on_every_out_of_fold_case_keeps_the_protocol(tmp_path):
    splits = kfold_splits(CASES, 3)
    config = _config(_out_of_fold_folders(tmp_path, splits), CASES)
    assert protocol_problems(splits, TEST, {"DDPM (cond)": config}, {"a": "none", "b": "none"}) == []


def test_leaks_and_unequal_rows_are_found(tmp_path):
    splits = kfold_splits(CASES, 3)
    sources = _out_of_fold_folders(
        tmp_path, splits, moved={CASES[4]: 0}
    )  # predicted by a fold that trained on it
    found = refiner_problems(_config(sources, CASES), splits, TEST, "row")
    assert found == [f"row: {CASES[4]} has no out-of-fold probabilities from fold 1 alone"]
    leaked = _config(sources, [*CASES, "BraTS-GLI-00100-000"])
    assert any("test case BraTS-GLI-00100-000" in p for p in refiner_problems(leaked, splits, TEST, "row"))
    partial = _config(sources, CASES[:6])
    assert any("saw 6 of the 9" in p for p in refiner_problems(partial, splits, TEST, "row"))
    post = protocol_problems(splits, TEST, {}, {"prior": "none", "refined": {"min_component_voxels": 10}})
    assert post and "post-processed differently" in post[0]
    overlapping = [dict(s, train=s["train"] + ["BraTS-GLI-00100-000"]) for s in splits]
    assert any("test cases in the training folds" in p for p in protocol_problems(overlapping, TEST, {}, {}))


def test_paired_difference_mean_interval_and_wilcoxon_agree_with_references():
    rng = np.random.default_rng(1)
    a = {f"c{i}": float(x) for i, x in enumerate(rng.random(12))}
    b = {k: v + 0.05 + 0.01 * rng.standard_normal() for k, v in a.items()}
    result = paired_difference(a, b, seed=3)
    differences = np.array([b[k] - a[k] for k in sorted(a)])
    assert result["mean"] == pytest.approx(differences.mean()) and result["num_cases"] == 12
    low, high = result["ci95"]
    assert low < differences.mean() < high and low > 0
    from scipy.stats import wilcoxon

    assert result["wilcoxon_p"] == pytest.approx(wilcoxon(differences).pvalue)
    assert wilcoxon_p([0.0, 0.0]) == 1.0 and np.isnan(bootstrap_ci([])[0])
    assert bootstrap_ci([2.0] * 5) == [2.0, 2.0]


def test_auroc_is_the_share_of_positive_negative_pairs_ranked_right():
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.3
    scores = np.round(rng.random(60) + labels * 0.4, 1)  # ties on purpose
    pairs = list(itertools.product(scores[labels], scores[~labels]))
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert auroc(scores, labels) == pytest.approx(brute)
    assert auroc(labels.astype(float), labels) == 1.0 and np.isnan(auroc(scores, np.ones(60, bool)))


def test_per_case_scores_average_the_regions():
    summary = {
        "metric_per_case": [
            {
                "reference_file": "/x/labelsTs/BraTS-GLI-00001-000.nii.gz",
                "metrics": {
                    "(1, 2, 3)": {"Dice": 0.9, "HD95": 3.0},
                    "(1, 3)": {"Dice": 0.6, "HD95": 6.0},
                    "(3,)": {"Dice": 0.3, "HD95": 9.0},
                },
            }
        ]
    }
    names = {"(1, 2, 3)": "WT", "(1, 3)": "TC", "(3,)": "ET"}
    case = per_case_scores(json.loads(json.dumps(summary)), names)["BraTS-GLI-00001-000"]
    assert (
        case["Dice TC"] == 0.6 and case["dice"] == pytest.approx(0.6) and case["hd95"] == pytest.approx(6.0)
    )


def _uncertainty_folders(tmp_path, std_of):
    """One 12³ case, regions whole tumour (labels 1, 2) and core (2): refined = balls of radius 4 and 2,
    reference = radius 5 and 3; the refiner's std is ``std_of(errors)``; the prior a soft version."""
    import SimpleITK as sitk

    zz, yy, xx = np.indices((12, 12, 12))
    r = np.sqrt((zz - 6) ** 2 + (yy - 6) ** 2 + (xx - 6) ** 2)
    reference = np.where(r < 3, 2, np.where(r < 5, 1, 0)).astype(np.uint8)
    probabilities = np.stack([r < 4, r < 2]).astype(np.float32)
    dataset = {
        "labels": {"background": 0, "whole": [1, 2], "core": 2},
        "regions_class_order": [1, 2],
        "file_ending": ".nii.gz",
    }
    for sub in ("labels", "images", "refined/uncertainty", "prior"):
        (tmp_path / sub).mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(reference), str(tmp_path / "labels" / "c.nii.gz"))
    ones = sitk.GetImageFromArray(np.ones((12, 12, 12), np.int16))
    sitk.WriteImage(ones, str(tmp_path / "images" / "c_0000.nii.gz"))
    np.savez(tmp_path / "refined" / "c.npz", probabilities=probabilities)
    errors = (probabilities > 0.5) != np.stack([reference > 0, reference == 2])
    np.savez(tmp_path / "refined" / "uncertainty" / "c.npz", std=std_of(errors).astype(np.float32))
    prior = np.stack([np.clip(0.5 + 0.1 * (4.5 - r), 0, 1), np.clip(0.5 + 0.1 * (2.5 - r), 0, 1)])
    np.savez(tmp_path / "prior" / "c.npz", probabilities=prior.astype(np.float32))
    return dataset, errors


def test_uncertainty_auroc_is_na_for_a_constant_map_and_comes_with_the_prior_entropy_baseline(tmp_path):
    from nnunet_diffrefine.benchmark.scores import binary_entropy, boundary_band, uncertainty_auroc

    dataset, errors = _uncertainty_folders(tmp_path / "a", lambda e: e.astype(float))
    a = tmp_path / "a"
    result = uncertainty_auroc(a / "refined", a / "labels", a / "images", dataset, prior=a / "prior")
    assert result["std_brain"] == 1.0 and result["std_band"] == 1.0  # the std marks exactly the errors
    prior = np.load(a / "prior" / "c.npz")["probabilities"]
    assert result["prior_entropy_brain"] == pytest.approx(auroc(binary_entropy(prior), errors))
    band = boundary_band(np.load(a / "refined" / "c.npz")["probabilities"] > 0.5, 2)
    assert result["prior_entropy_band"] == pytest.approx(auroc(binary_entropy(prior)[band], errors[band]))
    dataset, _ = _uncertainty_folders(tmp_path / "b", lambda e: np.full(e.shape, 0.2))
    b = tmp_path / "b"
    constant = uncertainty_auroc(b / "refined", b / "labels", b / "images", dataset)
    assert constant["std_brain"] is None and constant["std_band"] is None  # n/a, not 0.500
    assert constant["prior_entropy_brain"] is None  # no prior given


def test_boundary_band_matches_a_brute_force_distance():
    from scipy import ndimage

    from nnunet_diffrefine.benchmark.scores import boundary_band

    rng = np.random.default_rng(0)
    mask = np.zeros((1, 16, 16, 16), dtype=bool)
    mask[0, 3:-3, 3:-3, 3:-3] = ndimage.binary_opening(rng.random((10, 10, 10)) > 0.4)
    band = boundary_band(mask, 2)[0]
    # city-block distance to the other side of the boundary, by brute force
    inside, outside = np.argwhere(mask[0]), np.argwhere(~mask[0])
    for voxel in itertools.islice(np.ndindex(mask.shape[1:]), 0, None, 7):
        other = outside if mask[0][voxel] else inside
        distance = np.abs(other - np.array(voxel)).sum(1).min() if len(other) else 99
        assert band[voxel] == (distance <= 2), voxel


def test_the_committed_phantom_page_and_targets_are_its_json_rendered_by_todays_code():
    """``bench_refinement.py --rerender`` leaves the committed results as they are: the page and the
    targets follow from the JSON alone."""
    from pathlib import Path

    from nnunet_diffrefine.benchmark.heldout import targets
    from nnunet_diffrefine.benchmark.heldout_markdown import markdown

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    record = json.loads((results / "refinement.json").read_text())
    assert targets({r["name"]: r for r in record["rows"]}, record["refiners"]) == record["targets"]
    assert markdown(record) == (results / "refinement.md").read_text()


def test_held_out_settings_reject_unknown_rows_and_too_few_folds(tmp_path):
    from nnunet_diffrefine.benchmark.heldout import BASES, HeldOutSettings

    assert HeldOutSettings(work=tmp_path).bases == tuple(BASES)
    for bad in ({"folds": 1}, {"bases": ("U-Net",)}, {"profile": "smooth"}, {"phenotype": "feline"}):
        with pytest.raises(InputError):
            HeldOutSettings(work=tmp_path, **bad)


def test_phantom_rows_refine_base_rows_and_rows_trained_differently_never_share_a_refiner_folder(tmp_path):
    from nnunet_diffrefine.benchmark.heldout import (
        BASES,
        PAIRS,
        REFINED,
        TABLES,
        HeldOutBenchmark,
        HeldOutSettings,
    )
    from nnunet_diffrefine.refine.registry import refiner_settings
    from nnunet_diffrefine.workspace import NnUNetCommands, NnUNetFolders

    trained_as: dict[tuple[str, str], dict] = {}
    for row, spec in REFINED.items():
        assert spec.prior in BASES and not spec.force, row
        refiner_settings(spec.refiner, "cpu", **spec.changes)  # raises on an unknown or ill-typed setting
        key = (spec.prior, spec.folder_name)
        assert trained_as.setdefault(key, spec.changes) == spec.changes, f"{row} would reuse {key}'s refiner"
    for a, b in PAIRS:
        assert REFINED[a].prior == REFINED[b].prior, (a, b)
    assert all(n in BASES or n in REFINED for names in TABLES.values() for n in names)
    ablation = REFINED["MedSegDiff (cond), real priors only"]
    assert ablation.changes == {"perturbed_priors": 0.0}
    assert refiner_settings("medsegdiff", "cpu").perturbed_priors > 0, "the default trains on mixed priors"
    folders = NnUNetFolders(tmp_path / "raw", tmp_path / "pre", tmp_path / "results")
    b = HeldOutBenchmark(HeldOutSettings(work=tmp_path / "work"), NnUNetCommands(folders))
    assert b.refiner_folder("MedSegDiff (cond), real priors only").name == "refiner_medsegdiff__realonly"
    assert b.refiner_folder("MedSegDiff (cond), highway only (w = 0)") == b.refiner_folder(
        "MedSegDiff (cond)"
    )
