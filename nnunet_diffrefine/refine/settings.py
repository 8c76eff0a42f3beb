"""Typed refiner settings: one frozen dataclass per refiner, validated when it is made.

Every refiner declares its settings as a subclass of :class:`RefinerSettings` (training schedule,
sampling, and its own network and loss settings); the defaults are the papers' (Ke et al. Table 2,
Evans et al. Table 1). Settings are saved in ``refiner.json`` and in every checkpoint, printed in the
training log and listed by ``nnunet-diffrefine train-refiner --help``. A *preset* is a named set of
changes to the defaults (``paper``: none; ``cpu``: short schedules for a 2-core CPU; ``tiny``: a few
iterations of small networks, for tests); the preset's name is kept in the settings.

Written by hand rather than with pydantic: a dozen plain types, and the same errors on the command
line (``--set KEY=VALUE``, strings) and from Python (typed values).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nnunet_diffrefine.errors import InputError


def setting(default: Any, help: str = "", **limits: Any) -> Any:
    """A settings field: its default, a one-line help, and limits (``minimum``, ``maximum``, ``choices``,
    ``above`` (strictly greater than)). A subclass may redeclare a field with a new default only."""
    return field(default=default, metadata={"help": help, **limits})


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError("must be true or false")


def _parse_number(value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("must be an integer")
        return int(value) if isinstance(value, (int, float)) else int(str(value).strip())
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _parse_tuple(value: Any, args: tuple) -> tuple:
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a list of integers, e.g. 64,64,64")
    if args[-1] is not Ellipsis and len(value) != len(args):
        raise ValueError(f"must be {len(args)} integers, e.g. {','.join(['64'] * len(args))}")
    out = tuple(_parse_number(v, int) for v in value)
    if min(out) < 1:
        raise ValueError("must be positive integers")
    return out


def _parse(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` says (``X | None``, ``float | str``, ``tuple[int, ...]`` ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (type(None) in args and str(value).strip().lower() == "none"):
            if type(None) in args:
                return None
            raise ValueError("must not be empty")
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _parse(name, value, option)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(" or ".join(errors))
    if origin is tuple:
        return _parse_tuple(value, args)
    if hint is bool:
        return _parse_bool(name, value)
    if hint in (int, float):
        return _parse_number(value, hint)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError("must be a word")
        return value
    raise TypeError(f"setting {name}: unsupported type {hint}")


def _check_limits(value: Any, meta: dict) -> None:
    choices = meta.get("choices")
    if choices is not None and isinstance(value, str) and value not in choices:
        numbers = " or a number" if meta.get("minimum") is not None or meta.get("maximum") is not None else ""
        raise ValueError(f"must be one of {', '.join(map(str, choices))}{numbers}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise ValueError(f"must be >= {meta['minimum']}")
        if meta.get("maximum") is not None and value > meta["maximum"]:
            raise ValueError(f"must be <= {meta['maximum']}")
        if meta.get("above") is not None and value <= meta["above"]:
            raise ValueError(f"must be > {meta['above']}")


@dataclass(frozen=True)
class RefinerSettings:
    """Settings every refiner has (the training loop's and the sampler's)."""

    preset: str = setting("paper", "the named preset these settings started from")
    seed: int = setting(0, "seed of the weights, the patch sampling and the training noise", minimum=0)
    max_epochs: int = setting(50, "maximum training epochs", minimum=1)
    iterations_per_epoch: int = setting(250, "training iterations per epoch (nnU-Net's 250)", minimum=1)
    patience: int = setting(15, "early stopping: epochs without a better validation Dice", minimum=1)
    learning_rate: float = setting(1e-4, "peak AdamW learning rate", above=0)
    min_learning_rate: float = setting(1e-6, "start of the warm-up and end of the cosine", minimum=0)
    weight_decay: float = setting(1e-5, "AdamW weight decay", minimum=0)
    warmup_epochs: int = setting(10, "linear warm-up epochs (capped at max_epochs - 1)", minimum=0)
    batch_size: int = setting(2, "patches per training iteration", minimum=1)
    grad_clip: float = setting(1.0, "gradient clipping (max L2 norm)", above=0)
    patch_size: tuple[int, int, int] | None = setting(
        None, "training patch and inference window (Z,Y,X voxels); none: the base model's patch"
    )
    val_fraction: float = setting(
        0.2, "share of the out-of-fold cases kept for early stopping", above=0, maximum=0.5
    )
    inference_steps: int = setting(10, "reverse diffusion steps at inference", minimum=1)
    num_samples: int = setting(1, "samples per case (more: their mean, and an uncertainty map)", minimum=1)
    gate_folds: int = setting(
        3,
        "inner cross-validation folds that decide where the refiner is applied (0: its early-stopping "
        "cases decide, a weak test)",
        minimum=0,
    )
    gate_min_cases: int = setting(
        6,
        "the gate applies the refiner nowhere when fewer validation cases decide (6: the fewest on which "
        "an exact paired test can show a gain at 5 %)",
        minimum=1,
    )
    gate_hd95_tolerance: float | None = setting(
        1.0,
        "the gate keeps a blend only if its mean HD95 change on validation is at most this many voxels "
        "(of the largest spacing); none: Dice alone decides",
        minimum=0,
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "cpu": {
            "max_epochs": 20,
            "iterations_per_epoch": 25,
            "patience": 6,
            "warmup_epochs": 2,
            "learning_rate": 1e-3,
            "min_learning_rate": 1e-5,
            "patch_size": None,
            "gate_folds": 2,
        },
        "tiny": {
            "max_epochs": 1,
            "iterations_per_epoch": 2,
            "patience": 1,
            "warmup_epochs": 0,
            "inference_steps": 2,
            "patch_size": None,
            "gate_folds": 0,
        },
    }

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                parsed = _parse(f.name, value, hints[f.name])
                _check_limits(parsed, self.field_metadata(f.name))
            except ValueError as e:
                raise InputError(f"{self.label}: setting {f.name}={value!r} {e}") from None
            object.__setattr__(self, f.name, parsed)
        if self.min_learning_rate > self.learning_rate:
            raise InputError(
                f"{self.label}: min_learning_rate {self.min_learning_rate} is above learning_rate {self.learning_rate}"
            )

    # --- construction --------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return type(self).__name__

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """The presets of this class: each class's ``PRESETS`` updating those of the classes it derives from."""
        merged: dict[str, dict[str, Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, changes in vars(klass).get("PRESETS", {}).items():
                merged[name] = {**merged.get(name, {}), **changes}
        return merged

    @classmethod
    def from_preset(cls, preset: str = "paper", **changes: Any) -> RefinerSettings:
        """The defaults, changed by the named preset, then by ``changes`` (unknown names are errors)."""
        presets = cls.presets()
        if preset not in presets:
            raise InputError(f"{cls.__name__}: unknown preset {preset!r}; choose one of {', '.join(presets)}")
        cls._check_names(changes)
        return cls(**{**presets[preset], **changes, "preset": preset})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefinerSettings:
        """Settings saved by :meth:`to_dict` (unknown names are errors)."""
        cls._check_names(data)
        return cls(**data)

    @classmethod
    def _check_names(cls, data: dict[str, Any]) -> None:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )

    def replace(self, **changes: Any) -> RefinerSettings:
        """A validated copy with ``changes``."""
        self._check_names(changes)
        return dataclasses.replace(self, **changes)

    # --- description ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def summary(self) -> str:
        """One line ``name=value, ...`` for the training log."""
        return ", ".join(f"{k}={v}" for k, v in self.to_dict().items())

    @classmethod
    def field_metadata(cls, name: str) -> dict[str, Any]:
        """The field's help and limits, from the first class in the MRO that gives a help text."""
        for klass in cls.__mro__:
            for f in dataclasses.fields(klass) if dataclasses.is_dataclass(klass) else ():
                if f.name == name and f.metadata.get("help"):
                    return dict(f.metadata)
        return {}

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """``(name, default, help)`` for every setting."""
        return [
            (f.name, f.default, cls.field_metadata(f.name).get("help", "")) for f in dataclasses.fields(cls)
        ]


@dataclass(frozen=True)
class ConditionedSettings(RefinerSettings):
    """Refiners conditioned on the prior work on its region of interest (:mod:`.roi`)."""

    roi: bool = setting(True, "refine only the box of what the prior calls tumor, plus a margin")
    roi_threshold: float = setting(
        0.05, "tumor probability that puts a voxel in a tumor region", minimum=0, maximum=1
    )
    roi_seed_threshold: float = setting(
        0.5,
        "a region above roi_threshold enters the box only if it exceeds this somewhere",
        minimum=0,
        maximum=1,
    )
    roi_margin: int = setting(16, "voxels added on every side of the box", minimum=0)
    change_band: float | None = setting(
        None,
        "the refined map may differ from the prior only within this many voxels of the boundary of the "
        "prior's mask (per region; refine/roi.py); none: anywhere in the region of interest",
        minimum=0,
    )
    boundary_weight: float = setting(
        2.0,
        "extra weight of the segmentation loss within 2 voxels of the prior's boundary (0 with "
        "uncertainty_weight 0: the papers' unweighted loss)",
        minimum=0,
    )
    uncertainty_weight: float = setting(
        2.0, "extra weight of the segmentation loss times the prior's normalised entropy", minimum=0
    )
    perturbed_priors: float = setting(
        0.5,
        "share of training crops whose prior is replaced by one perturbed from the label or the prior "
        "(refine/perturb.py; 0: the out-of-fold priors only)",
        minimum=0,
        maximum=1,
    )
    checkpoint_priors: str = setting(
        "none",
        "other checkpoints of each fold (comma-separated, e.g. checkpoint_best.pth) whose predictions of "
        "the out-of-fold cases are added as training priors (refine/checkpoint_priors.py); none: the "
        "final checkpoint's only",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        from nnunet_diffrefine.refine.checkpoint_priors import checkpoint_names

        try:
            checkpoint_names(self.checkpoint_priors)
        except InputError as e:
            raise InputError(f"{self.label}: {e}") from None
        if self.roi_seed_threshold < self.roi_threshold:
            raise InputError(
                f"{self.label}: roi_seed_threshold {self.roi_seed_threshold} is below roi_threshold "
                f"{self.roi_threshold}; raise roi_seed_threshold too"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefinerSettings:
        """Settings saved by :meth:`to_dict`; settings saved before ``roi_seed_threshold`` existed get the
        saved ``roi_threshold`` as their seed threshold, which is how their region was drawn."""
        if "roi_seed_threshold" not in data and "roi_threshold" in data:
            data = {**data, "roi_seed_threshold": data["roi_threshold"]}
        return super().from_dict(data)
