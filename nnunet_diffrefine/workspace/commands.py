"""nnU-Net's commands as one typed API: plan and preprocess, train, predict, ensemble, evaluate.

Each method builds the command line nnU-Net documents and runs it with the workspace's folders, this
project's trainer folder and the process counts in its environment; a non-zero exit is one
:class:`CommandError` naming the command. The console scripts are taken from the running environment
(they live next to ``python``), so a virtual environment that is not activated still works.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_diffrefine.errors import DiffRefineError
from nnunet_diffrefine.workspace.folders import NnUNetFolders, trainer_folder

PLANNING_COMMANDS = ("nnUNetv2_plan_and_preprocess", "nnUNetv2_plan_experiment")


class CommandError(DiffRefineError):
    """An nnU-Net command exited with a non-zero code; the message names the command."""


def command_path(name: str) -> str:
    """A console script of the running environment, else ``name`` (found on ``PATH``)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


def run_process_group(
    command: Sequence[str], env: Mapping[str, str] | None = None, capture_output: bool = False
) -> subprocess.CompletedProcess:
    """:func:`subprocess.run` (text mode), with the command in a process group of its own that is killed
    whole when the caller is interrupted (Ctrl-C, or SIGTERM turned into an exit by
    :func:`~nnunet_diffrefine.workspace.stages.exit_on_sigterm`): a killed ``nnUNetv2_train`` would otherwise
    leave its data-augmentation workers running."""
    pipe = subprocess.PIPE if capture_output else None
    with subprocess.Popen(
        list(command), env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)


@dataclass(frozen=True)
class NnUNetCommands:
    """Runs nnU-Net's commands in ``folders``.

    ``base_environment`` is the environment the commands inherit (the caller passes ``os.environ`` at the
    command-line boundary; the library never reads it); ``num_processes`` caps nnU-Net's worker pools
    (its default of 8 oversubscribes a small machine); with ``capture_output`` a command's output is kept
    (returned, and its tail put into the error when it fails) instead of shown; ``intensity_samples``:
    foreground intensities the dataset fingerprint draws per channel in total (``None``: nnU-Net's 10^8;
    fewer change only the statistics CT normalisation reads, see :mod:`.fingerprint`).
    """

    folders: NnUNetFolders
    base_environment: Mapping[str, str] = field(default_factory=dict)
    num_processes: int = 2
    echo: bool = True
    capture_output: bool = False
    intensity_samples: int | None = None

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a command: inherited values, the folders, the trainer folder, ``extra``."""
        env = dict(self.base_environment)
        env.update(self.folders.variables())
        env["nnUNet_extTrainer"] = str(trainer_folder())
        env.setdefault("nnUNet_n_proc_DA", str(self.num_processes))
        env.setdefault("nnUNet_def_n_proc", str(self.num_processes))
        env.update(extra or {})
        return env

    def run(
        self, name: str, arguments: Sequence[str], extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run console script ``name`` with ``arguments``."""
        command = [command_path(name), *map(str, arguments)]
        environment = self.environment(extra)
        if name in PLANNING_COMMANDS and environment.get("nnUNet_n_proc_DA") == "0":
            # 0 is nnU-Net's single-threaded augmentation for training, but its planner passes that
            # count to torch.set_num_threads, which refuses 0
            environment["nnUNet_n_proc_DA"] = "1"
        if self.echo:
            print("$", " ".join(command), flush=True)
        result = run_process_group(command, environment, self.capture_output)
        if result.returncode != 0:
            output = f":\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}" if self.capture_output else ""
            raise CommandError(f"'{' '.join(command)}' exited with code {result.returncode}{output}")
        return result

    def plan_and_preprocess(
        self,
        dataset_id: int,
        configurations: Sequence[str] = ("3d_fullres",),
        verify_integrity: bool = False,
        target_spacing_mm: Sequence[float] | None = None,
        plans_name: str | None = None,
    ) -> None:
        """``nnUNetv2_plan_and_preprocess -d ID -c CONFIGURATIONS -np N -npfp N [--verify_dataset_integrity]
        [-overwrite_target_spacing Z Y X] [-overwrite_plans_name PLANS]``: fingerprint, plans and
        preprocessing in one command (``target_spacing_mm``: 3d_fullres resampled to that spacing, in mm,
        written as plans ``plans_name``, which nnU-Net advises whenever the spacing is overridden)."""
        n = self.num_processes
        arguments = ["-d", dataset_id, "-c", *configurations, "-np", *[n] * len(configurations), "-npfp", n]
        if self.intensity_samples is not None:  # the fingerprint first; nnU-Net's command then plans from it
            self.extract_fingerprint(dataset_id, verify_integrity)
        elif verify_integrity:
            arguments.append("--verify_dataset_integrity")
        if target_spacing_mm is not None:
            arguments += ["-overwrite_target_spacing", *target_spacing_mm]
        if plans_name is not None:
            arguments += ["-overwrite_plans_name", plans_name]
        self.run("nnUNetv2_plan_and_preprocess", arguments)

    def extract_fingerprint(self, dataset_id: int, verify_integrity: bool = False) -> None:
        """``nnUNetv2_extract_fingerprint -d ID -np N [--verify_dataset_integrity]``, or with
        ``intensity_samples`` set, nnU-Net's extraction drawing that many intensities
        (``python -m nnunet_diffrefine.workspace.fingerprint``); an existing fingerprint is kept."""
        arguments = ["-d", dataset_id, "-np", self.num_processes]
        arguments += ["--verify_dataset_integrity"] if verify_integrity else []
        if self.intensity_samples is None:
            self.run("nnUNetv2_extract_fingerprint", arguments)
        else:
            arguments += ["--intensity-samples", self.intensity_samples]
            self.run(sys.executable, ["-m", "nnunet_diffrefine.workspace.fingerprint", *arguments])

    def plan_experiment(self, dataset_id: int, arguments: Sequence[str] = ()) -> None:
        """``nnUNetv2_plan_experiment -d ID ARGUMENTS`` (e.g. ``-overwrite_target_spacing``, ``-overwrite_plans_name``)."""
        self.run("nnUNetv2_plan_experiment", ["-d", dataset_id, *arguments])

    def preprocess(
        self, dataset_id: int, plans: str, configurations: Sequence[str] = ("3d_fullres",)
    ) -> None:
        """``nnUNetv2_preprocess -d ID -plans_name PLANS -c CONFIGURATIONS -np N``."""
        n = [self.num_processes] * len(configurations)
        self.run(
            "nnUNetv2_preprocess", ["-d", dataset_id, "-plans_name", plans, "-c", *configurations, "-np", *n]
        )

    def train(
        self,
        dataset_id: int,
        fold: int | str,
        trainer: str,
        plans: str = "nnUNetPlans",
        configuration: str = "3d_fullres",
        device: str = "cpu",
        npz: bool = True,
        resume: bool = True,
        extra_environment: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """``nnUNetv2_train ID CONFIGURATION FOLD -tr TRAINER -p PLANS -device DEVICE [--npz] [--c]``;
        ``extra_environment`` carries what only the environment reaches (a trainer's schedule)."""
        arguments = [dataset_id, configuration, fold, "-tr", trainer, "-p", plans, "-device", device]
        arguments += (["--npz"] if npz else []) + (["--c"] if resume else [])
        return self.run("nnUNetv2_train", arguments, extra_environment)

    def predict(
        self,
        images: str | os.PathLike,
        output: str | os.PathLike,
        dataset_id: int,
        folds: Sequence[int | str],
        trainer: str,
        plans: str = "nnUNetPlans",
        configuration: str = "3d_fullres",
        device: str = "cpu",
        save_probabilities: bool = True,
        mirroring: bool = True,
        workers: int | None = None,
    ) -> None:
        """``nnUNetv2_predict -i IMAGES -o OUTPUT -d ID -c CONFIGURATION -f FOLDS -tr TRAINER -p PLANS``
        (``--save_probabilities``, ``--disable_tta`` without mirroring); ``workers`` (default
        ``num_processes``; 0: nnU-Net's sequential mode) for its preprocessing and export pools."""
        arguments = ["-i", images, "-o", output, "-d", dataset_id, "-c", configuration, "-f", *folds]
        arguments += ["-tr", trainer, "-p", plans, "-device", device]
        n = self.num_processes if workers is None else workers
        arguments += ["-npp", n, "-nps", n]
        arguments += (["--save_probabilities"] if save_probabilities else []) + (
            [] if mirroring else ["--disable_tta"]
        )
        self.run("nnUNetv2_predict", arguments)

    def ensemble(
        self, inputs: Sequence[str | os.PathLike], output: str | os.PathLike, save_probabilities: bool = False
    ) -> None:
        """``nnUNetv2_ensemble -i INPUTS -o OUTPUT -np N [--save_npz]``: average the probabilities of folders."""
        arguments = ["-i", *inputs, "-o", output, "-np", self.num_processes]
        self.run("nnUNetv2_ensemble", arguments + (["--save_npz"] if save_probabilities else []))

    def evaluate_folder(
        self,
        references: str | os.PathLike,
        predictions: str | os.PathLike,
        dataset_json: str | os.PathLike,
        plans_json: str | os.PathLike,
    ) -> Path:
        """``nnUNetv2_evaluate_folder REF PRED -djfile DATASET_JSON -pfile PLANS_JSON``; returns its summary.json."""
        summary = Path(predictions) / "summary.json"
        self.run(
            "nnUNetv2_evaluate_folder",
            [
                references,
                predictions,
                "-djfile",
                dataset_json,
                "-pfile",
                plans_json,
                "-o",
                summary,
                "-np",
                self.num_processes,
            ],
        )
        return summary
