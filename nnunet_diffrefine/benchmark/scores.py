"""Per-case scores of an evaluated prediction folder, fold ensembles, and uncertainty maps scored.

- :func:`per_case_scores`: from our ``summary.json`` (``evaluate_folder``), per case the Dice and HD95
  of each region and their means over the regions (TC/WT/ET), as the tables report them.
- :func:`ensemble_folders`: nnU-Net's own fold ensembling (mean of the probabilities, then its
  thresholding) of several prediction folders with probabilities, in one process.
- :func:`uncertainty_auroc`: how well a refiner's per-voxel standard deviation (``uncertainty/CASE.npz``)
  points at its own mistakes: the AUROC of the standard deviation for the voxels whose refined mask
  (probability > 0.5, per region) differs from the reference, pooled over the regions and the cases,
  inside the brain (non-zero first image channel), where every voxel could be wrong.
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


def uncertainty_auroc(
    refined: str | os.PathLike, references: str | os.PathLike, images: str | os.PathLike, dataset_json: dict
) -> float:
    """AUROC of the refiner's standard deviation for its wrong voxels (see the module docstring);
    ``refined`` holds ``CASE.npz`` and ``uncertainty/CASE.npz``; region-based datasets only."""
    import SimpleITK as sitk
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    manager = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    refined, ending = Path(refined), dataset_json["file_ending"]
    scores, wrong = [], []
    for npz in sorted(refined.glob("*.npz")):
        case = npz.name[: -len(".npz")]
        probabilities = np.load(npz)["probabilities"]
        std = np.load(refined / "uncertainty" / npz.name)["std"]
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(references) / f"{case}{ending}")))
        brain = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(images) / f"{case}_0000{ending}"))) != 0
        errors = (probabilities > 0.5) != _region_masks(labels, manager.foreground_regions)
        scores.append(std[:, brain].ravel())
        wrong.append(errors[:, brain].ravel())
    return auroc(np.concatenate(scores), np.concatenate(wrong)) if scores else float("nan")
