"""Reading and writing one case of a refinement in nnU-Net's formats.

Inputs (an ``nnUNetv2_predict --save_probabilities`` folder and the raw images) are checked before
anything is written; outputs are ``CASE.npz`` (``probabilities``, float32 ``(C, z, y, x)`` on the
original grid), ``CASE.pkl`` (the properties nnU-Net wrote), ``CASE<file_ending>`` (the segmentation)
and, with several samples, ``uncertainty/CASE.npz`` (key ``std``), each written to a temporary name
and renamed.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from nnunet_diffrefine.utils.io import atomic_output_file

UNCERTAINTY_FOLDER = "uncertainty"


def _check_probabilities(npz: Path, num_outputs: int) -> str | None:
    try:
        with np.load(npz) as f:
            if "probabilities" not in f:
                return f"{npz}: no 'probabilities' array"
            probs = f["probabilities"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        return f"{npz}: unreadable ({e or type(e).__name__})"
    if probs.ndim != 4:
        return f"{npz}: probabilities have shape {probs.shape}, expected (C, Z, Y, X)"
    if probs.shape[0] != num_outputs:
        return f"{npz}: {probs.shape[0]} probability channels, the model has {num_outputs}"
    if not np.isfinite(probs).all():
        return f"{npz}: probabilities contain NaN or infinite values"
    if probs.min() < -1e-4 or probs.max() > 1 + 1e-4:
        return f"{npz}: values outside [0, 1] ({probs.min():.3g} .. {probs.max():.3g}): not probabilities"
    return None


def _check_properties(pkl: Path) -> str | None:
    """nnU-Net's ``CASE.pkl`` (a dict of the image properties) is readable."""
    try:
        with open(pkl, "rb") as f:
            properties = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        return f"{pkl}: unreadable ({e or type(e).__name__})"
    if not isinstance(properties, dict) or "spacing" not in properties:
        return f"{pkl}: not nnU-Net's case properties (no 'spacing')"
    return None


def check_inputs(
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
        pkl = input_folder / f"{case}.pkl"
        if not pkl.is_file():
            problems.append(f"{pkl}: missing (run nnUNetv2_predict with --save_probabilities)")
        elif problem := _check_properties(pkl):
            problems.append(problem)
        problem = _check_probabilities(input_folder / f"{case}.npz", num_outputs)
        if problem:
            problems.append(problem)
        for c in range(num_inputs):
            image = images_folder / f"{case}_{c:04d}{file_ending}"
            if not image.is_file():
                problems.append(f"{image}: missing image channel {c} of case {case}")
    return problems


def output_files(output_folder: Path, case: str, file_ending: str, with_spread: bool) -> list[Path]:
    files = [output_folder / f"{case}{e}" for e in (".npz", ".pkl", file_ending)]
    if with_spread:
        files.append(output_folder / UNCERTAINTY_FOLDER / f"{case}.npz")
    return files


def write_case(
    output_folder: Path,
    case: str,
    input_folder: Path,
    probabilities: np.ndarray,
    segmentation: np.ndarray,
    spread: np.ndarray | None,
    writer,
    file_ending: str,
) -> None:
    """Write one case's refined files (see the module docstring)."""
    with open(input_folder / f"{case}.pkl", "rb") as f:
        properties = pickle.load(f)
    with atomic_output_file(output_folder / f"{case}.npz") as tmp:
        np.savez_compressed(tmp, probabilities=probabilities)
    with atomic_output_file(output_folder / f"{case}.pkl") as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(properties, f)
    with atomic_output_file(output_folder / f"{case}{file_ending}") as tmp:
        writer.write_seg(segmentation, str(tmp), properties)
    if spread is not None:
        (output_folder / UNCERTAINTY_FOLDER).mkdir(exist_ok=True)
        with atomic_output_file(output_folder / UNCERTAINTY_FOLDER / f"{case}.npz") as tmp:
            np.savez_compressed(tmp, std=np.clip(spread, 0.0, None).astype(np.float32))
