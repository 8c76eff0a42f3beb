"""nnU-Net's three folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) as one value.

Library functions take an :class:`NnUNetFolders`; the environment variables are read once, at the
command-line or trainer boundary (:func:`nnunet_diffrefine.environment.nnunet_folders`). Datasets are
resolved here from the folders themselves (``DatasetXXX_NAME`` by id or name) rather than through
``nnunetv2.paths``, which nnU-Net fixes from the environment when it is first imported.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.errors import InputError

VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def trainer_folder() -> Path:
    """The folder holding this project's trainer modules (``nnUNet_extTrainer``), editable or wheel install."""
    spec = importlib.util.find_spec("nnunet_diffrefine.trainers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunet_diffrefine.trainers is not installed; reinstall nnunet-diffrefine")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _folder(value: str | os.PathLike | None) -> Path | None:
    return None if value is None or str(value) == "" else Path(value)


@dataclass(frozen=True)
class NnUNetFolders:
    """Where nnU-Net keeps raw datasets, preprocessed data and trained models. A folder that is ``None``
    was not configured; using it raises one :class:`InputError` naming the variable."""

    raw: Path | None = None
    preprocessed: Path | None = None
    results: Path | None = None

    def __post_init__(self) -> None:
        for name in ("raw", "preprocessed", "results"):
            object.__setattr__(self, name, _folder(getattr(self, name)))

    @classmethod
    def under(cls, root: str | os.PathLike) -> NnUNetFolders:
        """The three folders as ``root/nnUNet_raw``, ``root/nnUNet_preprocessed``, ``root/nnUNet_results``."""
        root = Path(root).resolve()
        return cls(*(root / v for v in VARIABLES))

    @classmethod
    def from_mapping(cls, values: dict[str, str]) -> NnUNetFolders:
        """From ``{"nnUNet_raw": ..., ...}`` (missing or empty: not configured)."""
        return cls(*(values.get(v) for v in VARIABLES))

    def with_defaults(self, other: NnUNetFolders) -> NnUNetFolders:
        """These folders, each unset one taken from ``other``."""
        return NnUNetFolders(
            self.raw or other.raw, self.preprocessed or other.preprocessed, self.results or other.results
        )

    def variables(self) -> dict[str, str]:
        """The configured folders as nnU-Net's variables (for the environment of an nnU-Net command)."""
        values = zip(VARIABLES, (self.raw, self.preprocessed, self.results), strict=True)
        return {k: str(v) for k, v in values if v is not None}

    def require(self, variable: str) -> Path:
        """The folder of ``variable`` (``nnUNet_raw`` ...); an :class:`InputError` when it is not set."""
        folder = dict(zip(VARIABLES, (self.raw, self.preprocessed, self.results), strict=True))[variable]
        if folder is None:
            raise InputError(f"{variable} is not set (see 'nnunet-diffrefine env')")
        return folder

    def describe(self) -> str:
        """``nnUNet_raw=..., nnUNet_preprocessed=..., nnUNet_results=...`` for error messages."""
        values = (self.raw, self.preprocessed, self.results)
        return ", ".join(f"{k}={v or '(unset)'}" for k, v in zip(VARIABLES, values, strict=True))

    def dataset_name(self, dataset: str | int) -> str:
        """``DatasetXXX_NAME`` for an id (``970``) or a name, found in any of the three folders."""
        text = str(dataset)
        if not text.isdigit():
            if not text.startswith("Dataset"):
                raise InputError(f"{text!r} is neither a dataset id nor a DatasetXXX_NAME name")
            return text
        pattern = f"Dataset{int(text):03d}_*"
        names = set()
        for root in (self.raw, self.preprocessed, self.results):
            if root is not None and root.is_dir():
                names.update(p.name for p in root.glob(pattern) if p.is_dir())
        if len(names) == 1:
            return names.pop()
        if not names:
            raise InputError(f"no dataset {dataset} in the nnU-Net folders ({self.describe()})")
        raise InputError(f"dataset id {dataset} names several datasets: {', '.join(sorted(names))}")

    def raw_dataset(self, dataset: str | int) -> Path:
        """``nnUNet_raw/DatasetXXX_NAME`` (not checked for existence)."""
        return self.require("nnUNet_raw") / self.dataset_name(dataset)

    def preprocessed_dataset(self, dataset: str | int) -> Path:
        """``nnUNet_preprocessed/DatasetXXX_NAME``; an :class:`InputError` when it was not preprocessed."""
        root = self.require("nnUNet_preprocessed")
        text = str(dataset)
        if text.isdigit():
            matches = sorted(root.glob(f"Dataset{int(text):03d}_*")) if root.is_dir() else []
            if not matches:
                raise InputError(
                    f"no Dataset{int(text):03d}_* in {root}: run nnUNetv2_plan_and_preprocess -d {text} first"
                )
            return matches[0]
        folder = root / text
        if not folder.is_dir():
            raise InputError(f"{folder} does not exist: run nnUNetv2_plan_and_preprocess first")
        return folder

    def model_folder(self, dataset: str | int, trainer: str, plans: str, configuration: str) -> Path:
        """``nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION``; it must exist."""
        folder = self.model_path(dataset, trainer, plans, configuration)
        if not folder.is_dir():
            raise InputError(f"{folder} does not exist: train the model first")
        return folder

    def model_path(self, dataset: str | int, trainer: str, plans: str, configuration: str) -> Path:
        """Where :meth:`model_folder` is, whether or not it exists yet."""
        return (
            self.require("nnUNet_results")
            / self.dataset_name(dataset)
            / f"{trainer}__{plans}__{configuration}"
        )
