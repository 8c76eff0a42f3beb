"""The one place for argument validators and the arguments several commands share.

Validators are argparse ``type=`` functions: a bad value becomes argparse's one-line usage error
(exit code 2) naming the flag. The shared arguments keep nnU-Net's spelling (``-d -c -tr -p -f
-device -np``) and defaults.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable


def _number(kind: type, text: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def bounded(
    kind: type, minimum: float | None = None, above: float | None = None, maximum: float | None = None
) -> Callable[[str], float | int]:
    """A ``type=`` that parses ``kind`` and requires ``>= minimum`` (or ``> above``) and ``<= maximum``."""

    def parse(text: str) -> float | int:
        value = _number(kind, text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = bounded(int, minimum=1)
non_negative_int = bounded(int, minimum=0)
positive_float = bounded(float, above=0)
non_negative_float = bounded(float, minimum=0)
probability = bounded(float, minimum=0, maximum=1)


dataset_id = bounded(int, minimum=1, maximum=999)
"""nnU-Net dataset ids are 1-999 (``DatasetXXX_NAME``)."""


def dataset_name(text: str) -> str:
    """A dataset name for ``DatasetXXX_NAME``: letters, digits, ``_`` and ``-`` (no path separators)."""
    if not text or any(not (c.isalnum() or c in "_-") for c in text):
        raise argparse.ArgumentTypeError(f"use letters, digits, '_' and '-' only, got {text!r}")
    return text


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (for ``--set``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def add_model_arguments(parser: argparse.ArgumentParser, trainer: str, folds: list[str], what: str) -> None:
    """nnU-Net's ``-d -c -tr -p -f`` naming a trained model (``what`` says what the folds are for)."""
    parser.add_argument("-d", required=True, help="dataset id or name")
    parser.add_argument("-c", default="3d_fullres", help="configuration (default: 3d_fullres)")
    parser.add_argument("-tr", default=trainer, help=f"trainer of the base model (default: {trainer})")
    parser.add_argument("-p", default="nnUNetPlans", help="plans of the base model (default: nnUNetPlans)")
    parser.add_argument(
        "-f",
        nargs="+",
        type=non_negative_int,
        default=[int(f) for f in folds],
        help=f"{what} (default: {' '.join(folds)})",
    )


def add_device(parser: argparse.ArgumentParser, what: str = "device", default: str | None = "cpu") -> None:
    shown = default or "cpu"
    parser.add_argument(
        "-device", default=default, choices=["cpu", "cuda"], help=f"{what} (default: {shown})"
    )


def add_workers(
    parser: argparse.ArgumentParser, default: int | None = None, what: str = "worker processes"
) -> None:
    default = min(2, os.cpu_count() or 1) if default is None else default
    parser.add_argument("-np", type=positive_int, default=default, help=f"{what} (default: {default})")


def add_flag(parser, name: str, what: str) -> None:
    """An on/off option (``store_true``)."""
    parser.add_argument(name, action="store_true", help=what)


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    add_flag(parser, "--overwrite", what)


OFFICIAL_CONFIGS: tuple[str, ...] = ("gli", "ped", "mets", "MenRT", "MenPre", "GoAT")
"""The official BraTS scorer's label-group configurations."""


PROTOCOL_NAMES: tuple[str, ...] = ("brats-2023", "brats-official")
"""The names of :data:`nnunet_diffrefine.evaluation.protocols.PROTOCOLS` (spelled here so that ``--help``
does not import the evaluation; a test keeps them equal)."""


def add_protocol(parser: argparse.ArgumentParser, what: str) -> None:
    """``--protocol brats-2023|brats-official`` (``what``: its help) and ``--official-config``."""
    parser.add_argument("--protocol", choices=PROTOCOL_NAMES, default="brats-2023", help=what)
    parser.add_argument(
        "--official-config",
        choices=OFFICIAL_CONFIGS,
        default=None,
        help="label groups of the official protocol (default: those of the dataset.json's brats_convention)",
    )
