"""``nnunet-diffrefine env``: shell lines that make nnU-Net find this project's trainers.

Use as ``eval "$(nnunet-diffrefine env)"``. Everything that is not an ``export`` line is a shell
comment, so the output can be evaluated as it is.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
from pathlib import Path

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def trainer_folder() -> Path:
    """The folder holding this project's trainer modules, for an editable or a wheel install."""
    spec = importlib.util.find_spec("nnunet_diffrefine.trainers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunet_diffrefine.trainers is not installed; reinstall nnunet-diffrefine")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def env_lines(environ: dict[str, str] | None = None, root: str | None = None) -> list[str]:
    """The lines ``nnunet-diffrefine env`` prints, given an environment (default: ``os.environ``).

    ``root``: also export the three nnU-Net folders as ``root/nnUNet_raw`` etc. when they are unset.
    """
    environ = dict(os.environ if environ is None else environ)
    folder = str(trainer_folder())
    existing = [p for p in environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    paths = [folder] + [p for p in existing if os.path.abspath(p) != folder]
    lines = [f"export nnUNet_extTrainer={shlex.quote(os.pathsep.join(paths))}"]
    for name in NNUNET_FOLDERS:
        if environ.get(name):
            lines.append(f"# {name} is set: {environ[name]}")
        elif root is not None:
            value = str(Path(root).resolve() / name)
            lines.append(f"export {name}={shlex.quote(value)}")
        else:
            lines.append(f"# {name} is unset: nnU-Net needs it; e.g. export {name}=/data/{name}")
    return lines


def run(args: argparse.Namespace) -> int:
    for line in env_lines(root=args.root):
        print(line)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "env",
        help="print the shell lines that point nnUNet_extTrainer at this project's trainers",
        description="Print shell lines that point nnUNet_extTrainer at this project's trainer folder and "
        "say which of nnUNet_raw, nnUNet_preprocessed and nnUNet_results are unset. "
        'Use as: eval "$(nnunet-diffrefine env)"',
    )
    p.add_argument(
        "--root",
        default=None,
        help="also export nnUNet_raw, nnUNet_preprocessed and nnUNet_results as sub-folders of ROOT "
        "when they are unset",
    )
    p.set_defaults(func=run)
