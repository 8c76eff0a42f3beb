"""The interface every refiner implements, and how refiners are saved next to the base checkpoint.

A refiner maps a prior to refined probabilities in the base model's preprocessed space::

    refined = refiner.refine(prior, image)      # (C, Z, Y, X) probabilities, (I, Z, Y, X) image

where ``C`` is the number of nnU-Net outputs (sigmoid region channels, or softmax classes with
background) and ``I`` the number of input channels. ``fit`` trains it on out-of-fold cases;
``save``/``load`` keep ``refiner.json`` (name, settings, the dataset it was trained for) and the
weights in ``fold_N/refiner_<name>/``.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import atomic_output_file, write_json

CONFIG_FILE = "refiner.json"
WEIGHTS_FILE = "refiner_final.pth"


@dataclass(frozen=True)
class DatasetSignature:
    """What a refiner must agree on with the predictions it refines."""

    dataset_name: str
    num_input_channels: int
    num_outputs: int
    regions: bool
    labels: dict

    @classmethod
    def from_dataset_json(cls, dataset_name: str, dataset_json: dict) -> DatasetSignature:
        from nnunetv2.utilities.label_handling.label_handling import LabelManager

        manager = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
        return cls(
            dataset_name,
            len(dataset_json["channel_names"]),
            manager.num_segmentation_heads,
            manager.has_regions,
            dict(dataset_json["labels"]),
        )

    def check_matches(self, other: DatasetSignature, where: str) -> None:
        if self != other:
            diffs = [
                k
                for k in ("dataset_name", "num_input_channels", "num_outputs", "regions", "labels")
                if getattr(self, k) != getattr(other, k)
            ]
            raise InputError(
                f"{where}: the refiner was trained for {self.dataset_name} and does not fit these predictions "
                f"({', '.join(f'{k}: {getattr(self, k)} vs {getattr(other, k)}' for k in diffs)})"
            )


@dataclass
class TrainingCase:
    """One out-of-fold case in the preprocessed space: image ``(I, Z, Y, X)``, prior probabilities
    ``(C, Z, Y, X)`` from the base model and the target ``(C, Z, Y, X)`` (region masks or one-hot)."""

    case_id: str
    image: np.ndarray
    prior: np.ndarray
    target: np.ndarray


@dataclass
class RefinerSettings:
    """Training settings shared by the refiners; each refiner documents which ones it uses."""

    max_epochs: int = 50
    iterations_per_epoch: int = 100
    patience: int = 15
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 2
    patch_size: tuple[int, ...] = (64, 64, 64)
    grad_clip: float = 1.0
    seed: int = 0
    extra: dict = field(default_factory=dict)


class Refiner(ABC):
    """Base class of every refiner (see the module docstring)."""

    name: str = ""

    def __init__(self, signature: DatasetSignature, device: str | torch.device = "cpu", **settings) -> None:
        self.signature = signature
        self.device = torch.device(device)
        self.settings = dict(settings)

    @property
    def patch_multiple(self) -> int:
        """Every side of a training patch must be a multiple of this (the networks' total downsampling)."""
        return 1

    @abstractmethod
    def refine(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """Refined probabilities ``(C, Z, Y, X)`` float32 from ``prior`` ``(C, Z, Y, X)`` and ``image``."""

    def fit(
        self,
        train: list[TrainingCase],
        val: list[TrainingCase],
        folder: Path,
        settings: RefinerSettings,
        log=print,
    ) -> dict:
        """Train on out-of-fold cases; returns a history. Refiners without weights need no training."""
        return {}

    # --- persistence -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 - refiners without weights keep this
        """Load weights saved by :meth:`state_dict` (nothing to load for weightless refiners)."""

    def save(self, folder: str | os.PathLike, extra: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        if state:
            with atomic_output_file(folder / WEIGHTS_FILE) as tmp:
                torch.save(state, tmp)
        write_json(
            {
                "refiner": self.name,
                "settings": self.settings,
                "dataset": vars(self.signature),
                **(extra or {}),
            },
            folder / CONFIG_FILE,
        )


REGISTRY: dict[str, type[Refiner]] = {}


def register(cls: type[Refiner]) -> type[Refiner]:
    REGISTRY[cls.name] = cls
    return cls


def _import_builtin_refiners() -> None:
    from nnunet_diffrefine.refine import corrdiff, ddpm, identity, medsegdiff  # noqa: F401 - registration side effect


def check_refiner_name(name: str) -> None:
    """An :class:`InputError` listing the available refiners when ``name`` is not one of them."""
    _import_builtin_refiners()
    if name not in REGISTRY:
        raise InputError(f"unknown refiner {name!r}; available: {', '.join(sorted(REGISTRY))}")


def create_refiner(name: str, signature: DatasetSignature, device: str = "cpu", **settings) -> Refiner:
    check_refiner_name(name)
    return REGISTRY[name](signature, device=device, **settings)


def load_refiner(folder: str | os.PathLike, device: str = "cpu", overrides: dict | None = None) -> Refiner:
    """Load a refiner saved by :meth:`Refiner.save` (``overrides`` change inference settings, e.g. steps)."""
    folder = Path(folder)
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise InputError(f"{config_file} does not exist: no trained refiner in {folder}")
    try:
        config = json.loads(config_file.read_text())
        signature = DatasetSignature(**config["dataset"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{config_file} is not a refiner configuration: {e}") from None
    settings = {**config.get("settings", {}), **(overrides or {})}
    refiner = create_refiner(config["refiner"], signature, device=device, **settings)
    weights = folder / WEIGHTS_FILE
    if weights.is_file():
        refiner.load_state_dict(torch.load(weights, map_location=refiner.device, weights_only=True))
    elif refiner.state_dict():
        raise InputError(f"{weights} does not exist: the refiner in {folder} was not trained to the end")
    return refiner
