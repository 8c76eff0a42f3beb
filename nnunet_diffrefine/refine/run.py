"""``refine_folder``: refine an ``nnUNetv2_predict --save_probabilities`` folder with trained refiners.

For every case: the raw images go through the base model's own preprocessing, the exported
probabilities (``CASE.npz``, original image grid) are moved into the same preprocessed grid, each
fold's refiner refines them and the results are averaged (as nnU-Net averages folds). For a
conditioned refiner the change it made is moved back to the original grid and added to the exported
probabilities, so an identity refiner reproduces nnU-Net's files exactly; an unconditional (scratch)
refiner's output is moved back as it is (background outside nnU-Net's crop box), so nothing of the
prior reaches it. Outputs, in nnU-Net's formats (:mod:`.case_io`), plus ``dataset.json``,
``plans.json``, ``postprocessing.json``, ``refine_args.json`` (everything this run used, including how
the priors and the refiners' training priors were predicted, :mod:`.priors`) and ``timings.json``
(seconds and peak memory per case, preprocessing and refinement, not the export), so
nnUNetv2_ensemble, nnUNetv2_evaluate_folder and nnUNetv2_apply_postprocessing accept the folder.

With several samples per case (``num_samples`` > 1) ``uncertainty/CASE.npz`` holds each fold's
per-voxel standard deviation over its samples, averaged over the folds, on the original grid (a
subfolder, so nnU-Net's own tools never take it for a case).

Every input case of this part is checked before anything is written; finished cases are skipped on
a re-run (resume); ``num_parts``/``part_id`` split the cases across processes or machines.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import DatasetSignature, Refiner
from nnunet_diffrefine.refine.case_io import check_inputs, output_files, write_case
from nnunet_diffrefine.refine.gate import Gate, fold_gates, print_gates
from nnunet_diffrefine.refine.postprocess import (
    PostprocessConfig,
    check_postprocess,
    postprocess_segmentation,
)
from nnunet_diffrefine.refine.priors import PriorPrediction, read_prior_prediction
from nnunet_diffrefine.refine.registry import load_refiner, read_refiner_config
from nnunet_diffrefine.refine.spaces import original_to_preprocessed, preprocessed_to_original
from nnunet_diffrefine.utils.io import OutputExistsError, write_json
from nnunet_diffrefine.utils.resources import measure

ARGS_FILE = "refine_args.json"
TIMINGS_FILE = "timings.json"


@dataclass
class ModelContext:
    """A trained nnU-Net model folder and what nnU-Net builds from its plans and dataset.json."""

    folder: Path
    plans_manager: object
    configuration_manager: object
    label_manager: object
    dataset_json: dict
    signature: DatasetSignature

    @property
    def file_ending(self) -> str:
        return self.dataset_json["file_ending"]


def load_model_context(model_folder: str | os.PathLike) -> ModelContext:
    """The plans, configuration and labels of ``nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    model_folder = Path(model_folder)
    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(
                f"{model_folder / name} does not exist: is {model_folder} a trained nnU-Net model?"
            )
    plans_manager = PlansManager(json.loads((model_folder / "plans.json").read_text()))
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    configuration_manager = plans_manager.get_configuration(model_folder.name.split("__")[-1])
    return ModelContext(
        model_folder,
        plans_manager,
        configuration_manager,
        plans_manager.get_label_manager(dataset_json),
        dataset_json,
        DatasetSignature.from_dataset_json(plans_manager.dataset_name, dataset_json),
    )


def find_refiner_folder(fold_folder: Path, name: str | None) -> Path | None:
    """``fold_N/refiner_<name>``; with ``name`` None, the only refiner the fold has (None: not found)."""
    if name:
        folder = fold_folder / f"refiner_{name}"
        return folder if folder.is_dir() else None
    found = sorted(p for p in fold_folder.glob("refiner_*") if p.is_dir())
    if len(found) > 1:
        names = ", ".join(p.name[len("refiner_") :] for p in found)
        raise InputError(f"{fold_folder}: choose a refiner with --refiner (found: {names})")
    return found[0] if found else None


def load_fold_refiners(
    context: ModelContext, folds: list[int], name: str | None, device: str, overrides: dict | None
) -> tuple[list[Refiner], list[dict]]:
    """Each fold's refiner and its ``refiner.json``; one error naming every fold that has none."""
    folders = {f: find_refiner_folder(context.folder / f"fold_{f}", name) for f in folds}
    missing = [f for f, folder in folders.items() if folder is None]
    if missing:
        what = f"'{name}' refiner" if name else "refiner"
        raise InputError(
            f"{context.folder}: fold(s) {', '.join(map(str, missing))} have no trained {what} "
            f"(train it with 'nnunet-diffrefine train-refiner', or pass -f with the folds that have one)"
        )
    refiners, configs = [], []
    for folder in folders.values():
        refiner = load_refiner(folder, device=device, overrides=overrides)
        refiner.signature.check_matches(context.signature, str(folder))
        refiners.append(refiner)
        configs.append(read_refiner_config(folder))
    if len({r.name for r in refiners}) > 1:
        raise InputError(
            f"the folds hold different refiners ({', '.join(r.name for r in refiners)}): pass --refiner"
        )
    return refiners, configs


def prior_mismatch(configs: list[dict], priors: PriorPrediction) -> list[str]:
    """How the priors differ from those each refiner was trained on (one entry per difference)."""
    out: list[str] = []
    for config in configs:
        if config.get("training_priors"):
            for difference in PriorPrediction(**config["training_priors"]).differences(priors):
                if difference not in out:
                    out.append(difference)
    return out


def _case_seed(case: str) -> int:
    return zlib.crc32(case.encode())


def refine_preprocessed(
    refiners: list[Refiner],
    prior: np.ndarray,
    image: np.ndarray,
    seed: int,
    with_spread: bool,
    gates: list[Gate | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The folds' mean refined probabilities ``(C, Z, Y, X)`` (each fold's blended with the prior as its
    gate says) and, with ``with_spread``, the mean over the folds of each one's per-voxel standard
    deviation over its samples, scaled by the blend weight (else None)."""
    gates = gates or [None] * len(refiners)
    refined, spread = [], []
    for refiner, gate in zip(refiners, gates):
        out, std = refiner.refine_with_uncertainty(prior, image, seed=seed)
        if gate is not None:
            out = gate.apply(prior, out)
            std = std * gate.weights(std.shape[0]).reshape(-1, *[1] * (std.ndim - 1))
        refined.append(out)
        spread.append(std)
    return np.mean(refined, axis=0), (np.mean(spread, axis=0) if with_spread else None)


def to_original_grid(
    context: ModelContext,
    prior: np.ndarray,
    prior_pre: np.ndarray,
    refined_pre: np.ndarray,
    properties: dict,
    uses_prior: bool,
) -> np.ndarray:
    """Refined probabilities on the original grid: the prior plus the refiners' change (conditioned), or
    the refined map alone (unconditional), with background outside nnU-Net's crop box."""
    pm, cm = context.plans_manager, context.configuration_manager
    if uses_prior:
        change = preprocessed_to_original(refined_pre - prior_pre, properties, pm, cm)
        probabilities = np.clip(prior + change, 0.0, 1.0)
    else:
        outside = np.zeros(refined_pre.shape[0], np.float32)
        if not context.label_manager.has_regions:
            outside[0] = 1.0
        probabilities = np.clip(preprocessed_to_original(refined_pre, properties, pm, cm, outside), 0.0, 1.0)
    if not context.label_manager.has_regions:
        probabilities /= np.maximum(probabilities.sum(0, keepdims=True), 1e-8)
    return probabilities.astype(np.float32)


def _refine_one(context, refiners, gates, preprocessor, files, prior_file: Path, with_spread: bool):
    """One case: ``(probabilities, spread or None)`` on the original grid."""
    pm, cm = context.plans_manager, context.configuration_manager
    data, _, properties = preprocessor.run_case(files, None, pm, cm, context.dataset_json)
    prior = np.load(prior_file)["probabilities"].astype(np.float32)
    try:
        prior_pre = original_to_preprocessed(prior, properties, pm, cm, data.shape[1:])
    except ValueError as e:
        raise InputError(f"{prior_file}: {e}") from None
    seed = _case_seed(prior_file.name[: -len(".npz")])
    refined, spread = refine_preprocessed(refiners, prior_pre, data, seed, with_spread, gates)
    probabilities = to_original_grid(context, prior, prior_pre, refined, properties, refiners[0].uses_prior)
    if spread is not None:
        spread = preprocessed_to_original(spread, properties, pm, cm)
    return probabilities, spread


def _prepare_output(
    output_folder: Path, input_folder: Path, context: ModelContext, args: dict, overwrite: bool
):
    args_file = output_folder / ARGS_FILE
    if output_folder.is_dir() and not args_file.is_file() and any(output_folder.iterdir()):
        found = ", ".join(sorted(p.name for p in output_folder.iterdir())[:3])
        raise OutputExistsError(
            f"{output_folder} holds files that refine did not write ({found}, ...); choose an empty or new -o"
        )
    if args_file.is_file() and not overwrite:
        previous = json.loads(args_file.read_text())
        if {k: previous.get(k) for k in args} != json.loads(json.dumps(args)):
            raise OutputExistsError(
                f"{output_folder} holds a refinement with other settings; pass --overwrite or another -o"
            )
    output_folder.mkdir(parents=True, exist_ok=True)
    write_json(args, args_file)
    write_json(args["postprocessing"], output_folder / "postprocessing.json")
    for name in ("dataset.json", "plans.json"):
        source = input_folder / name if (input_folder / name).is_file() else context.folder / name
        shutil.copyfile(source, output_folder / name)


def input_cases(
    input_folder: str | os.PathLike, images_folder: str | os.PathLike, num_parts: int = 1, part_id: int = 0
) -> list[str]:
    """The cases of this part of ``input_folder`` (``CASE.npz``); one error for a missing folder or none."""
    input_folder, images_folder = Path(input_folder), Path(images_folder)
    for folder, what in ((input_folder, "prediction"), (images_folder, "images")):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {what} folder does not exist")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part_id must be in [0, {num_parts - 1}], got {part_id}")
    cases = sorted(p.name[: -len(".npz")] for p in input_folder.glob("*.npz"))
    if not cases:
        raise InputError(
            f"{input_folder}: no CASE.npz files (run nnUNetv2_predict with --save_probabilities)"
        )
    return cases[part_id::num_parts]


def _warn(message: str) -> None:
    print(f"nnunet-diffrefine refine: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class RefineOptions:
    """How :func:`refine_folder` refines.

    ``refiner``: the refiner folder's name (``fold_N/refiner_<name>``; None: the only one there);
    ``overrides``: inference settings changed for this run (``inference_steps``, ``num_samples``, ...);
    ``num_parts`` / ``part_id``: this process's share of the cases; ``prior_mirroring`` /
    ``prior_folds``: how the priors were predicted where the folder does not record it
    (:func:`~nnunet_diffrefine.refine.priors.read_prior_prediction`); ``force_refiner``: apply the
    refiner everywhere, whatever its validation gate says.
    """

    refiner: str | None = None
    device: str = "cpu"
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    overrides: dict | None = None
    num_parts: int = 1
    part_id: int = 0
    overwrite: bool = False
    progress: bool = True
    prior_mirroring: bool | None = None
    prior_folds: int | None = None
    force_refiner: bool = False


def refine_folder(
    input_folder: str | os.PathLike,
    output_folder: str | os.PathLike,
    model_folder: str | os.PathLike | Callable[[], Path],
    folds: list[int],
    images_folder: str | os.PathLike,
    options: RefineOptions | None = None,
    warn: Callable[[str], None] = _warn,
) -> Path:
    """Refine the predictions in ``input_folder`` into ``output_folder`` (see the module docstring).

    ``model_folder`` may be a function that finds it, called once the inputs are checked (so that a wrong
    input folder is reported first, as the command line does). ``warn`` receives each difference from
    the refiners' training priors. Each fold's refiner is blended with the prior as its validation gate
    says (:mod:`.gate`; printed per region)."""
    o = options or RefineOptions()
    input_folder, output_folder, images_folder = Path(input_folder), Path(output_folder), Path(images_folder)
    if input_folder.resolve() == output_folder.resolve():
        raise InputError("the output folder must differ from the input folder")
    cases = input_cases(input_folder, images_folder, o.num_parts, o.part_id)
    context = load_model_context(model_folder() if callable(model_folder) else model_folder)
    check_postprocess(o.postprocess, context.label_manager, context.dataset_json)
    refiners, configs = load_fold_refiners(context, folds, o.refiner, o.device, o.overrides)
    _check_all_inputs(cases, input_folder, images_folder, context)
    priors = read_prior_prediction(input_folder, len(folds), o.prior_mirroring, o.prior_folds)
    mismatch = prior_mismatch(configs, priors)
    for difference in mismatch:
        warn(f"the refiners were trained on other priors than these: {difference} ({priors.source})")
    gates = fold_gates(refiners, configs, o.force_refiner, warn)
    print_gates(folds, gates, context.dataset_json, o.force_refiner)
    record = {
        "input_folder": str(input_folder.resolve()),
        "model_folder": str(context.folder.resolve()),
        "folds": folds,
        "refiner": refiners[0].name,
        "settings": refiners[0].settings.to_dict(),
        "postprocessing": o.postprocess.to_json(),
        "prior_prediction": priors.to_json(),
        "refiner_training_priors": [c.get("training_priors") for c in configs],
        "prior_mismatch": mismatch,
        "force_refiner": o.force_refiner,
        "gates": [g.blends if g else None for g in gates],
    }
    _prepare_output(output_folder, input_folder, context, record, o.overwrite)
    job = RefineJob(
        context, refiners, gates, cases, input_folder, output_folder, images_folder, o.postprocess, o.device
    )
    _refine_cases(job, o.overwrite, o.progress)
    return output_folder


def _check_all_inputs(
    cases: list[str], input_folder: Path, images_folder: Path, context: ModelContext
) -> None:
    """One error listing the first problems of any case (before anything is written)."""
    n_in, n_out = context.signature.num_input_channels, context.signature.num_outputs
    problems = check_inputs(cases, input_folder, images_folder, context.file_ending, n_in, n_out)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError("; ".join(problems[:5]) + more)


@dataclass
class RefineJob:
    """The cases of one refinement run and what they are refined with."""

    context: ModelContext
    refiners: list[Refiner]
    gates: list[Gate | None]
    cases: list[str]
    input_folder: Path
    output_folder: Path
    images_folder: Path
    postprocess: PostprocessConfig
    device: str


def _refine_cases(job: RefineJob, overwrite: bool, progress: bool) -> None:
    """Refine, post-process and write every case that is not finished yet (``timings.json`` per case)."""
    context, refiners, out = job.context, job.refiners, job.output_folder
    with_spread = refiners[0].settings.num_samples > 1
    timings_file = out / TIMINGS_FILE
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    preprocessor = context.configuration_manager.preprocessor_class(verbose=False)
    writer = context.plans_manager.image_reader_writer_class()
    n_in, ending = context.signature.num_input_channels, context.file_ending

    def finished(case: str) -> bool:
        return all(f.is_file() for f in output_files(out, case, ending, with_spread))

    todo = [c for c in job.cases if overwrite or not finished(c)]
    label = f"refining ({refiners[0].name}, {len(refiners)} fold(s))"
    for case in tqdm(todo, desc=label, unit="case", disable=not progress):
        files = [str(job.images_folder / f"{case}_{c:04d}{ending}") for c in range(n_in)]
        with measure(job.device) as cost:
            prior_file = job.input_folder / f"{case}.npz"
            probabilities, spread = _refine_one(
                context, refiners, job.gates, preprocessor, files, prior_file, with_spread
            )
        segmentation = np.asarray(context.label_manager.convert_probabilities_to_segmentation(probabilities))
        segmentation = postprocess_segmentation(
            segmentation.astype(np.uint8), context.label_manager, job.postprocess, context.dataset_json
        )
        write_case(out, case, job.input_folder, probabilities, segmentation, spread, writer, ending)
        timings[case] = {
            "seconds": round(cost.seconds, 4),
            "peak_rss_mb": round(cost.peak_rss_mb, 1),
            "peak_gpu_mb": cost.peak_gpu_mb,
        }
        write_json(timings, timings_file)
