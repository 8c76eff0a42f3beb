"""``nnunet-diffrefine env``: shell lines that make nnU-Net find this project's trainers.

Use as ``eval "$(nnunet-diffrefine env)"``. Everything that is not an ``export`` line is a shell
comment, so the output can be evaluated as it is.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from nnunet_diffrefine.workspace.folders import trainer_folder

SUMMARY = "print the shell lines that point nnUNet_extTrainer at this project's trainers"
DESCRIPTION = (
    "Print shell lines that point nnUNet_extTrainer at this project's trainer folder and "
    "say which of nnUNet_raw, nnUNet_preprocessed and nnUNet_results are unset. "
    'Use as: eval "$(nnunet-diffrefine env)"'
)

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


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


def cpu_schedule_lines(trainer: str) -> list[str]:
    """``export`` lines of the CPU schedule preset for ``nnUNetv2_train ... -tr trainer``."""
    from nnunet_diffrefine.training.cpu_schedule import CPUSchedule

    schedule = CPUSchedule()
    lines = [
        f"# CPU schedule for {trainer} ({schedule.epochs} x {schedule.iterations} iterations; "
        "see nnunet_diffrefine/training/cpu_schedule.py); use with -p nnUNetPlans...CPU"
    ]
    return lines + [f"export {k}={shlex.quote(v)}" for k, v in schedule.environment(trainer).items()]


def run(args: argparse.Namespace) -> int:
    lines = env_lines(root=args.root)
    if args.cpu_schedule:
        lines += cpu_schedule_lines(args.cpu_schedule)
    for line in lines:
        print(line)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        default=None,
        help="also export nnUNet_raw, nnUNet_preprocessed and nnUNet_results as sub-folders of ROOT "
        "when they are unset",
    )
    p.add_argument(
        "--cpu-schedule",
        metavar="TRAINER",
        default=None,
        help="also export the CPU schedule preset (length, warm-up, peak learning rate) for nnUNetv2_train "
        "-tr TRAINER: the short schedule under which the base models learn on the synthetic phantoms",
    )
