"""Per-case scores of an evaluated prediction folder, fold ensembles, and uncertainty maps scored.

- :func:`per_case_scores`: from our ``summary.json`` (``evaluate_folder``), per case the Dice and HD95
  of each region and their means over the regions (TC/WT/ET), as the tables report them.
- :func:`ensemble_folders`: nnU-Net's own fold ensembling (mean of the probabilities, then its
  thresholding) of several prediction folders with probabilities, in one process.
- :func:`uncertainty_auroc`: how well a refiner's per-voxel standard deviation (``uncertainty/CASE.npz``)
  points at its own mistakes: the AUROC of the standard deviation for the voxels whose refined mask
  (probability > 0.5, per region) differs from the reference, pooled over the regions and the cases,
  inside the brain (non-zero first image channel) and in a band around the predicted boundaries, each
  next to the prior's own entropy as the baseline it has to beat; "n/a" (None) for a constant map.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nnunet_diffrefine.benchmark.paired import auroc


def per_case_scores(summary: dict, region_names: dict) -> dict[str, dict[str, float]]:
    """``{case: {"Dice <region>": .., "HD95 <region>": .., "dice": mean, "hd95": mean}}``.

    ``summary``: as ``evaluate_folder`` returns it (region tuples) or as read from its JSON (their
    strings); ``region_names``: ``{region: name}`` keyed either way."""
    region_names = {str(k): v for k, v in region_names.items()}
    out = {}
    for entry in summary["metric_per_case"]:
        case = Path(entry["reference_file"]).name.split(".")[0]
        scores: dict[str, float] = {}
        for region, metrics in entry["metrics"].items():
            name = region_names.get(str(region), str(region))
            scores[f"Dice {name}"], scores[f"HD95 {name}"] = float(metrics["Dice"]), float(metrics["HD95"])
        dice = [v for k, v in scores.items() if k.startswith("Dice ")]
        hd95 = [v for k, v in scores.items() if k.startswith("HD95 ")]
        out[case] = {**scores, "dice": float(np.mean(dice)), "hd95": float(np.mean(hd95))}
    return out


def ensemble_folders(folders: list[Path], output: Path, dataset_json: dict, plans: dict) -> Path:
    """nnU-Net's ensemble of ``folders`` (each with ``CASE.npz``/``.pkl``) into ``output``."""
    from nnunetv2.ensembling.ensemble import ensemble_folders as nnunet_ensemble

    nnunet_ensemble([str(f) for f in folders], str(output), True, 1, dataset_json, plans)
    return output


def _region_masks(labels: np.ndarray, regions: list) -> np.ndarray:
    return np.stack([np.isin(labels, r if isinstance(r, (list, tuple)) else [r]) for r in regions])


def binary_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Per-voxel entropy (bits) of independent region probabilities ``(R, Z, Y, X)``."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return (-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).astype(np.float32)


def boundary_band(masks: np.ndarray, width: int = 2) -> np.ndarray:
    """Voxels within ``width`` voxels of the boundary of each mask ``(R, Z, Y, X)`` (both sides)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 1)
    out = np.zeros_like(masks, dtype=bool)
    for r, mask in enumerate(masks):
        grown = ndimage.binary_dilation(mask, structure, iterations=width)
        shrunk = ndimage.binary_erosion(mask, structure, iterations=width)
        out[r] = grown & ~shrunk
    return out


def _auroc_or_none(scores: list[np.ndarray], wrong: list[np.ndarray]) -> float | None:
    """AUROC, or None ("n/a") where the scores are constant or a class is missing: no measurement then."""
    if not scores:
        return None
    s, w = np.concatenate(scores), np.concatenate(wrong)
    if s.size == 0 or np.ptp(s) == 0:
        return None
    value = auroc(s, w)
    return None if np.isnan(value) else value


def uncertainty_auroc(
    refined: str | os.PathLike,
    references: str | os.PathLike,
    images: str | os.PathLike,
    dataset_json: dict,
    prior: str | os.PathLike | None = None,
    band_width: int = 2,
) -> dict[str, float | None]:
    """How well the refiner's standard deviation points at its wrong voxels, and the baseline it has to
    beat: the prior's own entropy for the same wrong voxels (see the module docstring).

    ``refined`` holds ``CASE.npz`` and ``uncertainty/CASE.npz``; ``prior`` the prior's ``CASE.npz`` (same
    grid); region-based datasets only. Returns AUROCs over the brain and over a band of ``band_width``
    voxels around the refined masks' boundaries, where the errors are: ``std_brain``, ``std_band``,
    ``prior_entropy_brain``, ``prior_entropy_band``; None where it is not a measurement (a constant map,
    e.g. a refiner whose samples are all alike, or no prior given)."""
    import SimpleITK as sitk
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    manager = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    refined, ending = Path(refined), dataset_json["file_ending"]
    pooled: dict[str, tuple[list, list]] = {
        k: ([], []) for k in ("std_brain", "std_band", "prior_entropy_brain", "prior_entropy_band")
    }
    for npz in sorted(refined.glob("*.npz")):
        case = npz.name[: -len(".npz")]
        probabilities = np.load(npz)["probabilities"]
        std = np.load(refined / "uncertainty" / npz.name)["std"]
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(references) / f"{case}{ending}")))
        brain = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(images) / f"{case}_0000{ending}"))) != 0
        masks = probabilities > 0.5
        errors = masks != _region_masks(labels, manager.foreground_regions)
        where = {
            "brain": np.broadcast_to(brain, masks.shape),
            "band": boundary_band(masks, band_width) & brain,
        }
        maps = {"std": std}
        if prior is not None:
            maps["prior_entropy"] = binary_entropy(np.load(Path(prior) / npz.name)["probabilities"])
        for name, values in maps.items():
            if values.shape != masks.shape:
                raise ValueError(f"{npz}: {name} has shape {values.shape}, the probabilities {masks.shape}")
            for region, mask in where.items():
                pooled[f"{name}_{region}"][0].append(values[mask])
                pooled[f"{name}_{region}"][1].append(errors[mask])
    return {k: _auroc_or_none(*v) for k, v in pooled.items()}
