"""Prediction of test cases with one fold of a trained model, timed and memory-profiled per case.

Uses nnU-Net's own predictor pieces (its preprocessor, sliding-window inference and export), one
case at a time so that each case's seconds and peak memory can be measured. Resumable: cases whose
segmentation and timing record exist are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.priors import PriorPrediction, write_prior_prediction
from nnunet_diffrefine.utils.io import write_json
from nnunet_diffrefine.utils.resources import Measurement, measure
from nnunet_diffrefine.workspace.predictor import fold_predictor

TIMINGS_FILE = "timings.json"


def case_files(images_folder: str | os.PathLike, file_ending: str, num_channels: int) -> dict[str, list[str]]:
    """``{case id: [CASE_0000.nii.gz, ...]}`` for every complete case in an nnU-Net images folder."""
    folder = Path(images_folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: the images folder does not exist")
    ids = sorted({p.name[: -len(file_ending) - 5] for p in folder.glob(f"*_0000{file_ending}")})
    out = {}
    for case in ids:
        files = [folder / f"{case}_{c:04d}{file_ending}" for c in range(num_channels)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InputError(f"{folder}: case {case} lacks {', '.join(missing)}")
        out[case] = [str(f) for f in files]
    if not out:
        raise InputError(f"{folder}: no images named CASE_0000{file_ending}")
    return out


def predict_cases(
    model_folder: str | os.PathLike,
    fold: int,
    cases: dict[str, list[str]],
    output_folder: str | os.PathLike,
    device: str = "cpu",
    use_mirroring: bool = True,
    save_probabilities: bool = False,
    progress: bool = True,
) -> dict[str, Measurement]:
    """Predict ``cases`` with ``model_folder/fold_{fold}`` into ``output_folder``; per-case measurements.

    Measurements cover preprocessing, sliding-window inference and export, i.e. what
    ``nnUNetv2_predict`` spends on the case (minus its process start). How the probabilities were
    predicted (one fold, with or without mirroring) is recorded in ``prior_prediction.json`` for
    ``refine``.
    """
    import torch
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    timings_path = output_folder / TIMINGS_FILE
    timings: dict[str, dict] = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    predictor = fold_predictor(model_folder, fold, device=device, use_mirroring=use_mirroring)
    file_ending = predictor.dataset_json["file_ending"]
    mirrored = use_mirroring and bool(predictor.allowed_mirroring_axes)
    write_prior_prediction(output_folder, PriorPrediction(mirrored, 1, f"nnU-Net predictor, fold {fold}"))
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    todo = [c for c in cases if not (c in timings and (output_folder / f"{c}{file_ending}").is_file())]
    for case in tqdm(todo, desc=f"predicting fold {fold}", unit="case", disable=not progress):
        with measure(device) as m:
            data, _, properties = preprocessor.run_case(
                cases[case],
                None,
                predictor.plans_manager,
                predictor.configuration_manager,
                predictor.dataset_json,
            )
            logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
            export_prediction_from_logits(
                logits,
                properties,
                predictor.configuration_manager,
                predictor.plans_manager,
                predictor.dataset_json,
                str(output_folder / case),
                save_probabilities,
            )
        timings[case] = {
            "seconds": round(m.seconds, 4),
            "peak_rss_mb": round(m.peak_rss_mb, 1),
            "peak_gpu_mb": m.peak_gpu_mb,
        }
        write_json(timings, timings_path)
    return {c: Measurement(**timings[c]) for c in cases}
