"""The contract every refiner fulfils, and how a refiner is saved next to the base checkpoint.

A refiner maps a prior to refined probabilities in the base model's preprocessed space::

    refined, std = refiner.refine_with_uncertainty(prior, image, seed)   # (C, Z, Y, X) each
    refined = refiner.refine(prior, image, seed)

where ``prior`` are the base model's probabilities ``(C, Z, Y, X)`` (``C`` nnU-Net outputs: sigmoid
region channels, or softmax classes with background), ``image`` the preprocessed MRI ``(I, Z, Y, X)``
and ``std`` the per-voxel standard deviation over ``settings.num_samples`` samples (0 for one sample
or a deterministic refiner).

A refiner subclass declares ``name``, its ``settings_class`` (:mod:`.settings`) and, when it has
weights, builds them in :meth:`Refiner.build` as ``self.net`` (run under ``torch.manual_seed(settings.seed)``,
so the seed controls the initialisation; :attr:`Refiner.network` returns it) and gives the training
loop one batch of losses in :meth:`Refiner.training_losses`; :meth:`Refiner.fit` is the one training
loop of :mod:`.training_loop`. ``uses_prior = False`` marks an unconditional ("scratch") refiner,
whose output the framework never mixes with the prior. New refiners are registered through the
``nnunet_diffrefine.refiners`` entry-point group (:mod:`.registry`).

Saved in ``fold_N/refiner_<name>/``: ``refiner.json`` (name, settings, the dataset it was trained
for, provenance) and ``refiner_final.pth`` (settings, weights and extra state such as values chosen
on the validation cases).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.metrics import ValidationResult, validation_dice
from nnunet_diffrefine.refine.settings import RefinerSettings
from nnunet_diffrefine.utils.io import atomic_output_file, write_json

CONFIG_FILE = "refiner.json"
WEIGHTS_FILE = "refiner_final.pth"
FORMAT_VERSION = 2


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
    ``(C, Z, Y, X)`` from the base model and the target ``(C, Z, Y, X)`` (region masks or one-hot);
    ``extra_priors``: more priors of the case ``(C, Z, Y, X)`` (other checkpoints of its fold), drawn
    from by training crops only."""

    case_id: str
    image: np.ndarray
    prior: np.ndarray
    target: np.ndarray
    extra_priors: tuple[np.ndarray, ...] = ()


class Refiner(ABC):
    """Base class of every refiner (see the module docstring)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    """How tables name the refiner (default: ``name``)."""
    settings_class: ClassVar[type[RefinerSettings]] = RefinerSettings
    uses_prior: ClassVar[bool] = True
    """False for unconditional refiners: their output replaces the prior instead of correcting it."""

    def __init__(
        self,
        signature: DatasetSignature,
        settings: RefinerSettings | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        settings = self.settings_class() if settings is None else settings
        if type(settings) is not self.settings_class:
            raise InputError(
                f"{self.name}: expected {self.settings_class.__name__}, got {type(settings).__name__}"
            )
        self.signature, self.settings, self.device = signature, settings, torch.device(device)
        self.regions = signature.regions
        self.check_settings()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.build()

    # --- what a refiner provides ----------------------------------------------------------------------
    def check_settings(self) -> None:
        """Refuse settings this refiner cannot work with (one clear :class:`InputError`)."""
        patch, multiple = self.settings.patch_size, self.patch_multiple
        if patch is not None and any(p % multiple for p in self.patch_axes(patch)):
            raise InputError(f"{self.name}: the patch size {list(patch)} must be a multiple of {multiple}")
        for name in ("roi", "change_band"):
            if not self.uses_prior and getattr(self.settings, name, None) not in (None, False):
                raise InputError(
                    f"{self.name}: an unconditional refiner cannot use {name} (it never sees the prior)"
                )

    def build(self) -> None:  # noqa: B027 - refiners without weights build nothing
        """Create the networks (called under ``torch.manual_seed(settings.seed)``)."""

    @classmethod
    def patch_multiple_of(cls, settings: RefinerSettings) -> int:
        """Every patch side in :meth:`patch_axes` must be a multiple of this (the networks' downsampling)."""
        return 1

    @property
    def patch_multiple(self) -> int:
        return self.patch_multiple_of(self.settings)

    @staticmethod
    def patch_axes(patch: tuple[int, ...]) -> tuple[int, ...]:
        """The patch sides the networks downsample (all three; 2D refiners: the last two)."""
        return tuple(patch)

    @property
    def network(self) -> torch.nn.Module | None:
        """The trainable module, by convention ``self.net`` as :meth:`build` made it (None: nothing to train)."""
        return getattr(self, "net", None)

    @abstractmethod
    def refine_with_uncertainty(
        self, prior: np.ndarray, image: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Refined probabilities and their per-voxel standard deviation, both ``(C, Z, Y, X)`` float32."""

    def refine(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """Refined probabilities ``(C, Z, Y, X)`` float32 from ``prior`` ``(C, Z, Y, X)`` and ``image``."""
        return self.refine_with_uncertainty(prior, image, seed)[0]

    def training_losses(self, cases: list[TrainingCase], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Losses of one training batch drawn from ``cases`` with ``rng``; ``"loss"`` is optimised."""
        raise NotImplementedError(f"{self.name} has no weights to train")

    def validate(self, cases: list[TrainingCase]) -> ValidationResult:
        """Mean validation Dice of the refined masks and of the priors (case ``i`` sampled with seed ``i``)."""
        return validation_dice(self.refine, cases, self.regions)

    def apply_choices(self, choices: dict) -> None:  # noqa: B027 - only some refiners choose values
        """Adopt values chosen on the validation cases (:attr:`ValidationResult.choices`)."""

    def extra_state(self) -> dict:
        """Values saved next to the weights (e.g. choices made on the validation cases)."""
        return {}

    def load_extra_state(self, state: dict) -> None:  # noqa: B027
        """Restore :meth:`extra_state`."""

    def fit(
        self, train: list[TrainingCase], val: list[TrainingCase], folder: str | os.PathLike, log=print
    ) -> dict:
        """Train with :func:`~nnunet_diffrefine.refine.training_loop.fit_refiner`; returns the history."""
        from nnunet_diffrefine.refine.training_loop import fit_refiner

        return fit_refiner(self, train, val, Path(folder), log=log)

    # --- persistence ----------------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        """Settings, weights and extra state (what ``refiner_final.pth`` holds)."""
        net = self.network
        return {
            "refiner": self.name,
            "settings": self.settings.to_dict(),
            "state_dict": net.state_dict() if net is not None else {},
            "extra_state": self.extra_state(),
        }

    def load_checkpoint(self, checkpoint: dict, where: str) -> None:
        net = self.network
        try:
            if net is not None:
                net.load_state_dict(checkpoint["state_dict"])
            self.load_extra_state(checkpoint.get("extra_state", {}))
        except (KeyError, RuntimeError) as e:
            raise InputError(
                f"{where}: the weights do not fit {self.name} with these settings ({e})"
            ) from None

    def save(self, folder: str | os.PathLike, extra: dict | None = None) -> None:
        """Write ``refiner_final.pth`` (when the refiner has weights) and ``refiner.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.network is not None:
            with atomic_output_file(folder / WEIGHTS_FILE) as tmp:
                torch.save(self.checkpoint(), tmp)
        write_json(
            {
                "refiner": self.name,
                "format_version": FORMAT_VERSION,
                "settings": self.settings.to_dict(),
                "dataset": vars(self.signature),
                **(extra or {}),
            },
            folder / CONFIG_FILE,
        )
