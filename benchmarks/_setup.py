"""Shared set-up of the benchmark scripts that train on a synthetic dataset (imported as ``_setup``)."""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_diffrefine.workspace import NnUNetCommands, NnUNetFolders


def workspace(work: Path, **variables: str) -> NnUNetCommands:
    """nnU-Net's three folders under ``work`` and its commands with two processes (two data-augmentation
    workers unless ``nnUNet_n_proc_DA`` is set); ``variables`` are added to the commands' environment
    (e.g. ``nnUNet_def_n_proc="1"``)."""
    from nnunet_diffrefine.environment import process_environment

    environment = {"nnUNet_n_proc_DA": "2", **process_environment(), **variables}
    return NnUNetCommands(NnUNetFolders.under(work), environment, num_processes=2)


def synthesize_and_plan(
    nnunet: NnUNetCommands, dataset_id: int, name: str, num_train: int, num_test: int, shape: int, seed: int
) -> tuple[Path, Path]:
    """A synthetic raw dataset, planned and preprocessed (3d_fullres); returns (raw, preprocessed) folders."""
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    folder = f"Dataset{dataset_id:03d}_{name}"
    raw, pre = nnunet.folders.raw / folder, nnunet.folders.preprocessed / folder
    if not raw.is_dir():
        config = SynthConfig(shape=(shape,) * 3, seed=seed, phenotype="mixed")
        synthesize_dataset(nnunet.folders.raw, dataset_id, name, num_train, num_test, config, num_processes=2)
    if not (pre / "nnUNetPlans.json").is_file():
        nnunet.plan_and_preprocess(dataset_id)
    return raw, pre


def write_half_split(raw: Path, pre: Path) -> tuple[int, int]:
    """``splits_final.json`` with one fold that trains on the first half of the training cases and validates
    on the second: a base model that leaves errors, and out-of-fold cases for a refiner to learn from."""
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (raw / "imagesTr").glob("*_0000.nii.gz"))
    half = len(cases) // 2
    if not (pre / "splits_final.json").is_file():
        (pre / "splits_final.json").write_text(
            json.dumps([{"train": cases[:half], "val": cases[half:]}], indent=2)
        )
    return half, len(cases) - half


def machine(**extra) -> dict:
    """The machine a benchmark ran on (CPU cores, Python, platform, torch threads), with ``extra``."""
    import os
    import platform

    import torch

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        **extra,
    }


def save_json(record: dict, path: Path) -> None:
    """``record`` as JSON (indent 2) at ``path``, through a temporary file; folders made as needed."""
    from nnunet_diffrefine.utils.io import write_json

    write_json(record, path, indent=2)


def write_results(record: dict, out: Path, markdown: str, problems: list[str]) -> None:
    """``out``.json and ``out``.md (through temporary files), the table printed; a broken protocol fails."""
    from nnunet_diffrefine.utils.io import atomic_output_file, write_json

    write_json(record, out.with_suffix(".json"))
    with atomic_output_file(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
    print(markdown)
    if problems:
        raise SystemExit("the protocol was not kept: " + "; ".join(problems))
