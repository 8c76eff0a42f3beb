"""Shared set-up of the benchmark scripts that train on a synthetic dataset (imported as ``_setup``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(args: list[str], env: dict) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, env=env, check=True)


def nnunet_environment(work: Path, **variables: str) -> dict:
    """nnU-Net's three folders under ``work`` and our trainer folder, set here and in the returned
    environment for subprocesses (plus ``variables``)."""
    from nnunet_diffrefine.utils.nnunet_folders import trainer_folder

    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = os.environ[name] = str(work / name)
    env["nnUNet_extTrainer"] = os.environ["nnUNet_extTrainer"] = str(trainer_folder())
    env.update({"nnUNet_n_proc_DA": "2", **variables})
    return env


def synthesize_and_plan(
    work: Path, dataset_id: int, name: str, num_train: int, num_test: int, shape: int, seed: int, env: dict
) -> tuple[Path, Path]:
    """A synthetic raw dataset, planned and preprocessed (3d_fullres); returns (raw, preprocessed) folders."""
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    folder = f"Dataset{dataset_id:03d}_{name}"
    raw, pre = work / "nnUNet_raw" / folder, work / "nnUNet_preprocessed" / folder
    if not raw.is_dir():
        config = SynthConfig(shape=(shape,) * 3, seed=seed, phenotype="mixed")
        synthesize_dataset(
            work / "nnUNet_raw", dataset_id, name, num_train, num_test, config, num_processes=2
        )
    if not (pre / "nnUNetPlans.json").is_file():
        plan_and_preprocess(dataset_id, env)
    return raw, pre


def plan_and_preprocess(dataset_id: int, env: dict) -> None:
    """nnU-Net's planning and 3d_fullres preprocessing of ``dataset_id`` with two processes."""
    run(
        [
            str(BIN / "nnUNetv2_plan_and_preprocess"),
            *("-d", str(dataset_id), "-c", "3d_fullres", "-np", "2", "-npfp", "2"),
        ],
        env,
    )


def write_half_split(raw: Path, pre: Path) -> tuple[int, int]:
    """``splits_final.json`` with one fold that trains on the first half of the training cases and validates
    on the second: a base model that leaves errors, and out-of-fold cases for a refiner to learn from."""
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (raw / "imagesTr").glob("*_0000.nii.gz"))
    half = len(cases) // 2
    if not (pre / "splits_final.json").is_file():
        (pre / "splits_final.json").write_text(
            json.dumps([{"train": cases[:half], "val": cases[half:]}], indent=2)
        )
    return half, len(cases) - half


def commit(repo: Path) -> str:
    """The checked-out commit of ``repo``, with ``-dirty`` when the work tree has changes."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    return head + ("-dirty" if dirty.strip() else "")


class Stages:
    """Runs named stages once (skipped when ``done()`` says so); the wall time and the commit of each are
    kept in ``state.json`` (an older file holding only the times is read too)."""

    def __init__(self, work: Path, repo: Path) -> None:
        self.file, self.repo = work / "state.json", repo
        state = json.loads(self.file.read_text()) if self.file.is_file() else {}
        if "seconds" not in state:
            state = {"seconds": state, "commits": {}}
        self.times, self.commits = state["seconds"], state["commits"]

    def __call__(self, name: str, done, action) -> None:
        if done():
            print(f"[skip] {name}", flush=True)
            return
        print(f"[run] {name}", flush=True)
        start = time.perf_counter()
        action()
        self.times[name] = round(self.times.get(name, 0.0) + time.perf_counter() - start, 1)
        self.commits[name] = commit(self.repo)
        self.file.write_text(json.dumps({"seconds": self.times, "commits": self.commits}, indent=1))


def train_fold(env: dict, schedule, dataset_id: int, trainer: str, plans: str, fold: int) -> None:
    """``nnUNetv2_train DATASET 3d_fullres FOLD -tr TRAINER -p PLANS -device cpu --npz --c`` under ``schedule``
    (:class:`~nnunet_diffrefine.training.cpu_schedule.CPUSchedule`)."""
    command = [str(BIN / "nnUNetv2_train"), str(dataset_id), "3d_fullres", str(fold), "-tr", trainer]
    run([*command, "-p", plans, "-device", "cpu", "--npz", "--c"], dict(env, **schedule.environment(trainer)))


def fold_trained(fold_dir: Path) -> bool:
    """The fold finished: its final checkpoint and its scored out-of-fold validation are there."""
    return (fold_dir / "checkpoint_final.pth").is_file() and (
        fold_dir / "validation" / "summary.json"
    ).is_file()


def write_results(record: dict, out: Path, markdown: str, problems: list[str]) -> None:
    """``out``.json and ``out``.md (through temporary files), the table printed; a broken protocol fails."""
    from nnunet_diffrefine.utils.io import atomic_output_file, write_json

    write_json(record, out.with_suffix(".json"))
    with atomic_output_file(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
    print(markdown)
    if problems:
        raise SystemExit("the protocol was not kept: " + "; ".join(problems))
