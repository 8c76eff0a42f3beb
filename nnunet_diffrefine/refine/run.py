"""``refine_folder``: refine an ``nnUNetv2_predict --save_probabilities`` folder with trained refiners.

For every case: the raw images go through the base model's own preprocessing, the exported
probabilities (``CASE.npz``, original image grid) are moved into the same preprocessed grid, each
fold's refiner refines them and the results are averaged (as nnU-Net averages folds). The change the
refiners made is moved back to the original grid and added to the exported probabilities, so an
identity refiner reproduces nnU-Net's files exactly. Outputs, in nnU-Net's formats: ``CASE.npz``
(``probabilities``), ``CASE.pkl`` (the properties), ``CASE<file_ending>`` (segmentation after
postprocessing), plus ``dataset.json``, ``plans.json``, ``postprocessing.json`` and
``refine_args.json`` and ``timings.json`` (seconds and peak memory per case, preprocessing and
refinement, not the export), so nnUNetv2_ensemble, nnUNetv2_evaluate_folder and
nnUNetv2_apply_postprocessing accept the folder.

With several samples per case (``--num-samples`` > 1) a refiner that can measure it also writes
``uncertainty/CASE.npz`` (key ``std``, ``(C, z, y, x)`` on the original grid: each fold's per-voxel
standard deviation over its samples, averaged over the folds; a subfolder, so nnU-Net's own tools
never take it for a case).

Every input case of this part is checked before anything is written; finished cases are skipped
on a re-run (resume); ``num_parts``/``part_id`` split the cases across processes or machines.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_diffrefine.benchmark.resources import measure
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import DatasetSignature, Refiner, load_refiner
from nnunet_diffrefine.refine.postprocess import PostprocessConfig, postprocess_segmentation
from nnunet_diffrefine.refine.spaces import original_to_preprocessed, preprocessed_to_original
from nnunet_diffrefine.utils.io import OutputExistsError, atomic_output_file, write_json

ARGS_FILE = "refine_args.json"
UNCERTAINTY_FOLDER = "uncertainty"


def model_folder_for(dataset: str | int, trainer: str, plans: str, configuration: str) -> Path:
    """``nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION`` (dataset by id or name)."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    results = os.environ.get("nnUNet_results")
    if not results:
        raise InputError("nnUNet_results is not set (see 'nnunet-diffrefine env')")
    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise InputError(str(e)) from None
    folder = Path(results) / name / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist: train the model first")
    return folder


def find_refiner_folder(fold_folder: Path, name: str | None) -> Path:
    """``fold_N/refiner_<name>``; with ``name`` None, the only refiner the fold has."""
    if name:
        folder = fold_folder / f"refiner_{name}"
        if not folder.is_dir():
            raise InputError(f"{folder} does not exist: no '{name}' refiner was trained for this fold")
        return folder
    found = sorted(p for p in fold_folder.glob("refiner_*") if p.is_dir())
    if len(found) != 1:
        what = ", ".join(p.name[len("refiner_") :] for p in found) or "none"
        raise InputError(f"{fold_folder}: choose a refiner with --refiner (found: {what})")
    return found[0]


def _case_seed(case: str) -> int:
    return zlib.crc32(case.encode())


def _refine_case(
    refiners: list[Refiner], prior: np.ndarray, image: np.ndarray, seed: int, with_spread: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The folds' mean refined probabilities ``(C, Z, Y, X)`` and, with ``with_spread``, the mean over the
    folds of each one's per-voxel standard deviation over its samples (else None)."""
    if not with_spread:
        return np.mean([r.refine(prior, image, seed=seed) for r in refiners], axis=0), None
    pairs = [r.refine_with_uncertainty(prior, image, seed=seed) for r in refiners]
    return np.mean([p[0] for p in pairs], axis=0), np.mean([p[1] for p in pairs], axis=0)


def _check_inputs(
    cases: list[str],
    input_folder: Path,
    images_folder: Path,
    file_ending: str,
    num_inputs: int,
    num_outputs: int,
) -> list[str]:
    """One message per problem found in the inputs of ``cases`` (nothing is written before they pass)."""
    problems = []
    for case in cases:
        npz, pkl = input_folder / f"{case}.npz", input_folder / f"{case}.pkl"
        if not pkl.is_file():
            problems.append(f"{pkl}: missing (run nnUNetv2_predict with --save_probabilities)")
        try:
            with np.load(npz) as f:
                if "probabilities" not in f:
                    problems.append(f"{npz}: no 'probabilities' array")
                    continue
                probs = f["probabilities"]
        except (OSError, ValueError, EOFError) as e:
            problems.append(f"{npz}: unreadable ({e})")
            continue
        if probs.ndim != 4:
            problems.append(f"{npz}: probabilities have shape {probs.shape}, expected (C, Z, Y, X)")
        elif probs.shape[0] != num_outputs:
            problems.append(f"{npz}: {probs.shape[0]} probability channels, the model has {num_outputs}")
        elif not np.isfinite(probs).all():
            problems.append(f"{npz}: probabilities contain NaN or infinite values")
        elif probs.min() < -1e-4 or probs.max() > 1 + 1e-4:
            problems.append(
                f"{npz}: values outside [0, 1] ({probs.min():.3g} .. {probs.max():.3g}): not probabilities"
            )
        for c in range(num_inputs):
            image = images_folder / f"{case}_{c:04d}{file_ending}"
            if not image.is_file():
                problems.append(f"{image}: missing image channel {c} of case {case}")
    return problems


def refine_folder(
    input_folder: str | os.PathLike,
    output_folder: str | os.PathLike,
    model_folder: str | os.PathLike,
    folds: list[int],
    images_folder: str | os.PathLike,
    refiner: str | None = None,
    device: str = "cpu",
    num_parts: int = 1,
    part_id: int = 0,
    postprocess: PostprocessConfig | None = None,
    overrides: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Refine the predictions in ``input_folder`` into ``output_folder`` (see the module docstring)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    postprocess = postprocess or PostprocessConfig()
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    model_folder, images_folder = Path(model_folder), Path(images_folder)
    if not input_folder.is_dir():
        raise InputError(f"{input_folder}: the prediction folder does not exist")
    if not images_folder.is_dir():
        raise InputError(f"{images_folder}: the images folder does not exist")
    if input_folder.resolve() == output_folder.resolve():
        raise InputError("the output folder must differ from the input folder")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part_id must be in [0, {num_parts - 1}], got {part_id}")
    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(
                f"{model_folder / name} does not exist: is {model_folder} a trained nnU-Net model?"
            )
    plans = json.loads((model_folder / "plans.json").read_text())
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    configuration = model_folder.name.split("__")[-1]
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    label_manager = plans_manager.get_label_manager(dataset_json)
    signature = DatasetSignature.from_dataset_json(plans_manager.dataset_name, dataset_json)
    file_ending = dataset_json["file_ending"]

    refiners: list[Refiner] = []
    for fold in folds:
        folder = find_refiner_folder(model_folder / f"fold_{fold}", refiner)
        r = load_refiner(folder, device=device, overrides=overrides)
        r.signature.check_matches(signature, str(folder))
        refiners.append(r)

    all_cases = sorted(p.name[: -len(".npz")] for p in input_folder.glob("*.npz"))
    if not all_cases:
        raise InputError(
            f"{input_folder}: no CASE.npz files (run nnUNetv2_predict with --save_probabilities)"
        )
    cases = all_cases[part_id::num_parts]
    problems = _check_inputs(
        cases, input_folder, images_folder, file_ending, signature.num_input_channels, signature.num_outputs
    )
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError("; ".join(problems[:5]) + more)

    args = {
        "input_folder": str(input_folder.resolve()),
        "model_folder": str(model_folder.resolve()),
        "folds": folds,
        "refiner": refiners[0].name,
        "settings": refiners[0].settings,
        "postprocessing": postprocess.to_json(),
    }
    args_file = output_folder / ARGS_FILE
    if args_file.is_file() and not overwrite:
        previous = json.loads(args_file.read_text())
        if {k: previous.get(k) for k in args} != json.loads(json.dumps(args)):
            raise OutputExistsError(
                f"{output_folder} holds a refinement with other settings; pass --overwrite or another -o"
            )
    output_folder.mkdir(parents=True, exist_ok=True)
    write_json(args, args_file)
    write_json(postprocess.to_json(), output_folder / "postprocessing.json")
    for name in ("dataset.json", "plans.json"):
        source = input_folder / name if (input_folder / name).is_file() else model_folder / name
        shutil.copyfile(source, output_folder / name)

    with_spread = all(int(r.settings.get("num_samples", 1)) > 1 for r in refiners) and all(
        hasattr(r, "refine_with_uncertainty") for r in refiners
    )
    timings_file = output_folder / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    writer = plans_manager.image_reader_writer_class()

    def finished(case: str) -> bool:
        files = [output_folder / f"{case}{e}" for e in (".npz", ".pkl", file_ending)]
        if with_spread:
            files.append(output_folder / UNCERTAINTY_FOLDER / f"{case}.npz")
        return all(f.is_file() for f in files)

    todo = [c for c in cases if overwrite or not finished(c)]
    for case in tqdm(
        todo, desc=f"refining ({refiners[0].name}, {len(folds)} fold(s))", unit="case", disable=not progress
    ):
        with measure(device) as cost:
            files = [
                str(images_folder / f"{case}_{c:04d}{file_ending}")
                for c in range(signature.num_input_channels)
            ]
            data, _, properties = preprocessor.run_case(
                files, None, plans_manager, configuration_manager, dataset_json
            )
            prior = np.load(input_folder / f"{case}.npz")["probabilities"].astype(np.float32)
            try:
                prior_pre = original_to_preprocessed(
                    prior, properties, plans_manager, configuration_manager, data.shape[1:]
                )
            except ValueError as e:
                raise InputError(f"{input_folder / (case + '.npz')}: {e}") from None
            refined, spread = _refine_case(refiners, prior_pre, data, _case_seed(case), with_spread)
            change = preprocessed_to_original(
                refined - prior_pre, properties, plans_manager, configuration_manager
            )
            if with_spread:
                spread = preprocessed_to_original(spread, properties, plans_manager, configuration_manager)
        probabilities = np.clip(prior + change, 0.0, 1.0).astype(np.float32)
        if not label_manager.has_regions:
            probabilities /= np.maximum(probabilities.sum(0, keepdims=True), 1e-8)
        segmentation = np.asarray(label_manager.convert_probabilities_to_segmentation(probabilities))
        segmentation = postprocess_segmentation(segmentation.astype(np.uint8), label_manager, postprocess)
        with open(input_folder / f"{case}.pkl", "rb") as f:
            saved_properties = pickle.load(f)
        with atomic_output_file(output_folder / f"{case}.npz") as tmp:
            np.savez_compressed(tmp, probabilities=probabilities)
        with atomic_output_file(output_folder / f"{case}.pkl") as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(saved_properties, f)
        with atomic_output_file(output_folder / f"{case}{file_ending}") as tmp:
            writer.write_seg(segmentation, str(tmp), saved_properties)
        if with_spread:
            (output_folder / UNCERTAINTY_FOLDER).mkdir(exist_ok=True)
            with atomic_output_file(output_folder / UNCERTAINTY_FOLDER / f"{case}.npz") as tmp:
                np.savez_compressed(tmp, std=np.clip(spread, 0.0, None).astype(np.float32))
        timings[case] = {
            "seconds": round(cost.seconds, 4),
            "peak_rss_mb": round(cost.peak_rss_mb, 1),
            "peak_gpu_mb": cost.peak_gpu_mb,
        }
        write_json(timings, timings_file)
    return output_folder
