"""Which refiners exist: the built-in ones, and third-party ones from the entry-point group
``nnunet_diffrefine.refiners``; creating and loading them by name.

A package adds a refiner with one module and one entry point (``pyproject.toml``)::

    [project.entry-points."nnunet_diffrefine.refiners"]
    blur = "my_package.blur:BlurRefiner"

The class must derive from :class:`~nnunet_diffrefine.refine.base.Refiner` and carry the entry
point's name as ``name``. Names are listed without importing anything (the CLI builds its choices
from them); a class is imported when it is first used.
"""

from __future__ import annotations

import importlib
import json
import os
from importlib.metadata import entry_points
from pathlib import Path

import torch

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.refine.base import CONFIG_FILE, WEIGHTS_FILE, DatasetSignature, Refiner
from nnunet_diffrefine.refine.settings import RefinerSettings

ENTRY_POINT_GROUP = "nnunet_diffrefine.refiners"

BUILTIN_REFINERS: dict[str, str] = {
    "identity": "nnunet_diffrefine.refine.identity:IdentityRefiner",
    "corrdiff": "nnunet_diffrefine.refine.corrdiff:CorrDiffRefiner",
    "ddpm": "nnunet_diffrefine.refine.ddpm:DDPMRefiner",
    "ddpm_scratch": "nnunet_diffrefine.refine.ddpm:DDPMScratchRefiner",
    "medsegdiff": "nnunet_diffrefine.refine.medsegdiff:MedSegDiffRefiner",
    "medsegdiff_scratch": "nnunet_diffrefine.refine.medsegdiff:MedSegDiffScratchRefiner",
    "control": "nnunet_diffrefine.refine.control:ControlRefiner",
}


def _plugin_entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN_REFINERS}


def available_refiners() -> list[str]:
    """Names of every refiner: the built-in ones first, then those of installed packages (sorted)."""
    return [*BUILTIN_REFINERS, *sorted(_plugin_entry_points())]


def trainable_refiners() -> list[str]:
    """The refiners that learn (every one but ``identity``), for ``train-refiner``."""
    return [n for n in available_refiners() if n != "identity"]


def refiner_class(name: str) -> type[Refiner]:
    """The class registered as ``name`` (an :class:`InputError` listing the names when there is none)."""
    if name in BUILTIN_REFINERS:
        module, _, attribute = BUILTIN_REFINERS[name].partition(":")
        cls = getattr(importlib.import_module(module), attribute)
        where = BUILTIN_REFINERS[name]
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            raise InputError(f"unknown refiner {name!r}; available: {', '.join(available_refiners())}")
        where = f"entry point {plugins[name].value!r} of group {ENTRY_POINT_GROUP}"
        try:
            cls = plugins[name].load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is one clear line, not a traceback
            raise InputError(f"refiner {name!r}: {where} does not load ({type(e).__name__}: {e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Refiner)) or cls.name != name:
        raise InputError(f"refiner {name!r}: {where} is not a Refiner subclass named {name!r}")
    return cls


def refiner_settings(name: str, preset: str = "paper", **changes) -> RefinerSettings:
    """The typed settings of refiner ``name``: its defaults (the paper's), a preset, then ``changes``."""
    return refiner_class(name).settings_class.from_preset(preset, **changes)


def create_refiner(
    name: str,
    signature: DatasetSignature,
    settings: RefinerSettings | None = None,
    device: str | torch.device = "cpu",
) -> Refiner:
    """A new (untrained) refiner ``name`` for ``signature`` with ``settings`` (default: the paper's)."""
    return refiner_class(name)(signature, settings, device=device)


def read_refiner_config(folder: str | os.PathLike) -> dict:
    """``refiner.json`` of a saved refiner (a clear error when it is missing or unreadable)."""
    config_file = Path(folder) / CONFIG_FILE
    if not config_file.is_file():
        raise InputError(f"{config_file} does not exist: no trained refiner in {folder}")
    try:
        config = json.loads(config_file.read_text())
        config["refiner"], config["settings"], config["dataset"]  # noqa: B018 - the keys must be there
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{config_file} is not a refiner configuration: {e}") from None
    return config


def load_refiner(
    folder: str | os.PathLike, device: str | torch.device = "cpu", overrides: dict | None = None
) -> Refiner:
    """A refiner saved by :meth:`Refiner.save`; ``overrides`` change settings (e.g. ``inference_steps``)."""
    folder = Path(folder)
    config = read_refiner_config(folder)
    cls = refiner_class(config["refiner"])
    try:
        settings = cls.settings_class.from_dict(config["settings"])
        signature = DatasetSignature(**config["dataset"])
    except (InputError, TypeError) as e:
        raise InputError(f"{folder / CONFIG_FILE}: {e} (written by another version?)") from None
    refiner = cls(signature, settings.replace(**(overrides or {})), device=device)
    if refiner.network is None:
        return refiner
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{weights} does not exist: the refiner in {folder} was not trained to the end")
    checkpoint = torch.load(weights, map_location=refiner.device, weights_only=True)
    if checkpoint.get("settings") != config["settings"]:
        raise InputError(
            f"{weights} and {CONFIG_FILE} disagree about the settings: the folder was changed by hand"
        )
    refiner.load_checkpoint(checkpoint, str(weights))
    return refiner
