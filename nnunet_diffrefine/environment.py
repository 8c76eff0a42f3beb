"""The one module that reads environment variables: this project's (``DIFFREFINE_*``), nnU-Net's folders,
the report endpoint's and the user's configuration folder.

nnU-Net builds trainers with a fixed constructor (``nnUNetv2_train ... -tr Trainer``), so settings that
must reach a trainer cannot come as flags; those, and a few defaults of the report, come through these
variables. Everything else is an argument. Each variable is read here, validated, and turned into a typed
object; a bad value is one :class:`~nnunet_diffrefine.errors.InputError` naming the variable.

========================================= ============================================================== ======================
variable                                  meaning                                                        default
========================================= ============================================================== ======================
``DIFFREFINE_NUM_EPOCHS``                 base trainers: number of epochs                                1000 (nnU-Net's)
``DIFFREFINE_ITERS_PER_EPOCH``            base trainers: training iterations per epoch                   250
``DIFFREFINE_VAL_ITERS_PER_EPOCH``        base trainers: validation iterations per epoch                 50
``DIFFREFINE_WARMUP_EPOCHS``              base trainers: linear warm-up epochs (capped at epochs - 1)    5
``DIFFREFINE_LR``                         base trainers: peak learning rate                              1e-4 AdamW; stock 1e-2
``DIFFREFINE_SAVE_EVERY``                 base trainers: epochs between ``checkpoint_latest.pth``        50
``DIFFREFINE_KEEP_CHECKPOINTS``           base trainers: epochs whose weights are also kept, e.g. 30,40  none
``DIFFREFINE_REFINER_PRESET``             ``<Network><Refiner>Trainer``: the refiner's preset            ``paper``
``DIFFREFINE_REFINER_EPOCHS``             ... its ``max_epochs``                                         the preset's
``DIFFREFINE_REFINER_ITERS``              ... its ``iterations_per_epoch``                               the preset's
``DIFFREFINE_REFINER_PATIENCE``           ... its ``patience``                                           the preset's
``DIFFREFINE_REFINER_LR``                 ... its ``learning_rate``                                      the preset's
``DIFFREFINE_REFINER_BATCH``              ... its ``batch_size``                                         the preset's
``DIFFREFINE_REFINER_STEPS``              ... its ``inference_steps``                                    the preset's
``DIFFREFINE_SWIN_PRETRAINED``            ``SwinUNETRTrainer``: encoder weights to start from            none
``DIFFREFINE_REPORT_MODEL``               ``report``: the model name when ``--model`` is not given       ``gpt-4o``
``DIFFREFINE_REPORT_SECRET_FILE``         ``report``: the pseudonymisation secret's file                 ``~/.config/...``
========================================= ============================================================== ======================

nnU-Net's ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` become one
:class:`~nnunet_diffrefine.workspace.folders.NnUNetFolders` here (:func:`nnunet_folders`), which library
functions take as an argument; ``OPENAI_BASE_URL`` and the API key variable are read by
:func:`report_endpoint`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.errors import InputError

TRAINER_SCHEDULE_VARIABLES = {  # nnU-Net trainer attribute -> variable
    "num_epochs": "DIFFREFINE_NUM_EPOCHS",
    "num_iterations_per_epoch": "DIFFREFINE_ITERS_PER_EPOCH",
    "num_val_iterations_per_epoch": "DIFFREFINE_VAL_ITERS_PER_EPOCH",
    "warmup_epochs": "DIFFREFINE_WARMUP_EPOCHS",
    "initial_lr": "DIFFREFINE_LR",
    "save_every": "DIFFREFINE_SAVE_EVERY",
    "keep_checkpoints": "DIFFREFINE_KEEP_CHECKPOINTS",
}
REFINER_PRESET_VARIABLE = "DIFFREFINE_REFINER_PRESET"
REFINER_VARIABLES = {  # refiner setting -> variable
    "max_epochs": "DIFFREFINE_REFINER_EPOCHS",
    "iterations_per_epoch": "DIFFREFINE_REFINER_ITERS",
    "patience": "DIFFREFINE_REFINER_PATIENCE",
    "learning_rate": "DIFFREFINE_REFINER_LR",
    "batch_size": "DIFFREFINE_REFINER_BATCH",
    "inference_steps": "DIFFREFINE_REFINER_STEPS",
}
SWIN_PRETRAINED_VARIABLE = "DIFFREFINE_SWIN_PRETRAINED"
REPORT_MODEL_VARIABLE = "DIFFREFINE_REPORT_MODEL"
REPORT_SECRET_VARIABLE = "DIFFREFINE_REPORT_SECRET_FILE"
REPORT_BASE_URL_VARIABLE = "OPENAI_BASE_URL"
REPORT_DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"
TRAINER_LOOKUP_VARIABLE = "nnUNet_extTrainer"
ALL_VARIABLES = (
    *TRAINER_SCHEDULE_VARIABLES.values(),
    REFINER_PRESET_VARIABLE,
    *REFINER_VARIABLES.values(),
    SWIN_PRETRAINED_VARIABLE,
    REPORT_MODEL_VARIABLE,
    REPORT_SECRET_VARIABLE,
)


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


@dataclass(frozen=True)
class TrainerSchedule:
    """The base trainers' schedule as the variables set it; None: the trainer's own default."""

    num_epochs: int | None = None
    num_iterations_per_epoch: int | None = None
    num_val_iterations_per_epoch: int | None = None
    warmup_epochs: int | None = None
    initial_lr: float | None = None
    save_every: int | None = None
    keep_checkpoints: tuple[int, ...] | None = None
    """epochs (counted from 1) after which the weights are also saved as ``checkpoint_epoch_<N>.pth``"""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, variable = getattr(self, f.name), TRAINER_SCHEDULE_VARIABLES[f.name]
            if value is None:
                continue
            if f.name == "keep_checkpoints":
                if not value or any(epoch < 1 for epoch in value):
                    raise InputError(f"{variable}={','.join(map(str, value))} must name epochs >= 1")
                continue
            if f.name == "initial_lr":
                if not 0 < value < float("inf"):
                    raise InputError(f"{variable}={value} must be a positive number")
                continue
            minimum = 0 if f.name == "warmup_epochs" else 1
            if value < minimum:
                raise InputError(f"{variable}={value} must be >= {minimum}")

    def overrides(self) -> dict[str, int | float | tuple[int, ...]]:
        """``{trainer attribute: value}`` for every value that is set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def environment(self) -> dict[str, str]:
        """The variables that give this schedule to ``nnUNetv2_train`` (the inverse of :func:`trainer_schedule`)."""
        return {
            TRAINER_SCHEDULE_VARIABLES[k]: ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
            for k, v in self.overrides().items()
        }


def trainer_schedule(environ: Mapping[str, str] | None = None) -> TrainerSchedule:
    """The :class:`TrainerSchedule` the ``DIFFREFINE_*`` schedule variables set (empty ones are unset)."""
    env = _environ(environ)
    values: dict[str, int | float | tuple[int, ...]] = {}
    for attribute, variable in TRAINER_SCHEDULE_VARIABLES.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        if attribute == "keep_checkpoints":
            try:
                values[attribute] = tuple(sorted({int(v) for v in raw.split(",") if v.strip()}))
            except ValueError:
                raise InputError(f"{variable}={raw!r} is not a comma-separated list of epochs") from None
            continue
        kind = float if attribute == "initial_lr" else int
        try:
            values[attribute] = kind(raw)
        except ValueError:
            raise InputError(
                f"{variable}={raw!r} is not {'a number' if kind is float else 'an integer'}"
            ) from None
    return TrainerSchedule(**values)


def refiner_stage_settings(refiner_name: str, environ: Mapping[str, str] | None = None):
    """The :class:`~nnunet_diffrefine.refine.settings.RefinerSettings` of a ``<Network><Refiner>Trainer``'s
    refiner stage: the preset of ``DIFFREFINE_REFINER_PRESET`` (default ``paper``) with the
    ``DIFFREFINE_REFINER_*`` changes."""
    from nnunet_diffrefine.refine.registry import refiner_settings

    env = _environ(environ)
    changes = {key: env[var] for key, var in REFINER_VARIABLES.items() if env.get(var, "") != ""}
    preset = env.get(REFINER_PRESET_VARIABLE) or "paper"
    try:
        return refiner_settings(refiner_name, preset, **changes)
    except InputError as e:
        named = ", ".join(f"{REFINER_VARIABLES[k]}={v}" for k, v in changes.items())
        raise InputError(
            f"{e} (from {REFINER_PRESET_VARIABLE}={preset}{', ' + named if named else ''})"
        ) from None


def refiner_stage_environment(preset: str | None = None, **changes: int | float) -> dict[str, str]:
    """The variables that give a ``<Network><Refiner>Trainer``'s refiner stage ``preset`` and ``changes``
    (keys of :data:`REFINER_VARIABLES`; the inverse of :func:`refiner_stage_settings`)."""
    unknown = set(changes) - set(REFINER_VARIABLES)
    if unknown:
        raise InputError(f"no variable sets the refiner setting(s) {sorted(unknown)}")
    variables = {REFINER_VARIABLES[k]: str(v) for k, v in changes.items()}
    return {REFINER_PRESET_VARIABLE: preset, **variables} if preset else variables


def swin_pretrained_weights(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file of ``DIFFREFINE_SWIN_PRETRAINED`` (None when unset)."""
    value = _environ(environ).get(SWIN_PRETRAINED_VARIABLE)
    return Path(value) if value else None


def report_model(environ: Mapping[str, str] | None = None) -> str | None:
    """``DIFFREFINE_REPORT_MODEL`` (None when unset)."""
    return _environ(environ).get(REPORT_MODEL_VARIABLE) or None


def report_secret_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """``DIFFREFINE_REPORT_SECRET_FILE`` (None when unset: the report's default place)."""
    value = _environ(environ).get(REPORT_SECRET_VARIABLE)
    return Path(value) if value else None


def nnunet_folders(environ: Mapping[str, str] | None = None):
    """nnU-Net's three folders as :class:`~nnunet_diffrefine.workspace.folders.NnUNetFolders` (unset: None)."""
    from nnunet_diffrefine.workspace.folders import NnUNetFolders

    return NnUNetFolders.from_mapping(dict(_environ(environ)))


def process_environment() -> dict[str, str]:
    """A copy of this process's environment, for the commands it starts."""
    return dict(os.environ)


def ensure_trainer_lookup() -> None:
    """Let nnU-Net find this project's trainers in this process: nnU-Net resolves ``-tr`` names through
    ``nnUNet_extTrainer`` (as ``nnunet-diffrefine env`` sets it for a shell)."""
    from nnunet_diffrefine.workspace.folders import trainer_folder

    folder = str(trainer_folder())
    current = [p for p in os.environ.get(TRAINER_LOOKUP_VARIABLE, "").split(os.pathsep) if p]
    if folder not in current:
        os.environ[TRAINER_LOOKUP_VARIABLE] = os.pathsep.join([folder, *current])


def user_config_folder(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config``."""
    value = _environ(environ).get("XDG_CONFIG_HOME")
    return Path(value) if value else Path(os.path.expanduser("~")) / ".config"


def report_endpoint(
    api_key_variable: str = REPORT_DEFAULT_KEY_VARIABLE, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``(base URL, API key)`` of the report's OpenAI-compatible endpoint: ``OPENAI_BASE_URL`` and the
    variable ``api_key_variable`` names (keys never come as flags); None when unset."""
    env = _environ(environ)
    return env.get(REPORT_BASE_URL_VARIABLE) or None, env.get(api_key_variable) or None
