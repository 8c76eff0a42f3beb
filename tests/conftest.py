"""Shared fixtures: tiny synthetic datasets generated once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# Two pytest-xdist workers share the two cores: one thread each (torch here, OpenMP in the nnU-Net
# subprocesses), or both spin on four threads and every test gets slower.
THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
os.environ["OMP_NUM_THREADS"] = THREADS
os.environ["MKL_NUM_THREADS"] = THREADS
DATASET = 980

TINY_SHAPE = (48, 48, 48)
# nnU-Net's fingerprint draws 10^8 foreground intensities whatever the dataset's size (most of planning's
# time for these tiny datasets); MRI plans do not depend on them (nnunet_diffrefine.workspace.fingerprint)
INTENSITY_SAMPLES = 1_000_000


# The tests that share the tiny nnU-Net models (trained once per session) run on one worker, first:
# they are the longest unit of work; every other test is a unit of its own.
SHARED_MODELS = (
    "tests/test_refine.py",
    "tests/test_swin_diffusion_trainers.py",
    "tests/test_trainers_nnunet.py",
)


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(int(THREADS))


# Long independent tests, handed out next so that the other worker starts on them.
LONG_FIRST = ("tests/test_bench_refinement.py", "tests/test_demo.py")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return 0 if path in SHARED_MODELS else 1 if path in LONG_FIRST else 2

    items.sort(key=rank)  # stable: the order within a rank is kept


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scope scheduling with the scopes above (its own ``xdist_group`` marks do not
    survive pytest 9's node ids)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedModelsFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "shared-models" if nodeid.split("::")[0] in SHARED_MODELS else nodeid

    return SharedModelsFirst(config, log)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Path:
    """A raw folder with Dataset990_Tiny: 4 adult training and 1 test phantom on a 48^3 grid."""
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    raw = tmp_path_factory.mktemp("nnUNet_raw")
    synthesize_dataset(
        raw, 990, "Tiny", 4, 1, SynthConfig(shape=TINY_SHAPE, seed=3), num_processes=1, progress=False
    )
    return raw


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment for nnU-Net subprocesses with its three folders inside ``tmp_path``."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = tmp_path / name
        folder.mkdir()
        env[name] = str(folder)
    return env


def run_checked(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def isolated_nnunet_env(root: Path, **overrides: str) -> dict[str, str]:
    """Environment for nnU-Net subprocesses: its three folders created in ``root``, this project's
    trainers, data augmentation in the training process itself (``nnUNet_n_proc_DA=0``: nnU-Net's
    single-threaded augmenter; a worker process costs more to start than two tiny iterations take), and
    no nnUNet_*/DIFFREFINE_* variables from outside."""
    from nnunet_diffrefine.workspace.folders import trainer_folder

    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "DIFFREFINE_"))}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / name).mkdir()
        env[name] = str(root / name)
    env.update(
        nnUNet_extTrainer=str(trainer_folder()),
        nnUNet_n_proc_DA="0",
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS=THREADS,
        **overrides,
    )
    return env


@pytest.fixture(scope="session")
def tiny_nnunet(tmp_path_factory) -> dict[str, str]:
    """nnU-Net folders with a planned and preprocessed 40^3 dataset and the small-CPU presets."""
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset
    from nnunet_diffrefine.training.architectures import ARCHITECTURES
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    env = isolated_nnunet_env(tmp_path_factory.mktemp("nnunet"))
    synthesize_dataset(
        env["nnUNet_raw"], DATASET, "TinyTrain", 5, 1, SynthConfig(shape=(40, 40, 40), seed=7), progress=False
    )
    nnunet_commands(env).plan_and_preprocess(DATASET)
    for arch in (*ARCHITECTURES, "nnunet"):
        write_plans_preset(DATASET, arch, cpu=True, preprocessed_root=env["nnUNet_preprocessed"])
    return env


def nnunet_commands(env: dict[str, str]):
    """nnU-Net's commands in the folders of ``env`` (an :func:`isolated_nnunet_env`), one process each,
    their output captured (and shown when one fails)."""
    from nnunet_diffrefine.workspace import NnUNetCommands, NnUNetFolders

    return NnUNetCommands(
        NnUNetFolders.from_mapping(env),
        env,
        num_processes=1,
        echo=False,
        capture_output=True,
        intensity_samples=INTENSITY_SAMPLES,
    )


def nnunet_train(
    env: dict, trainer: str, plans: str, epochs: int = 1, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``nnUNetv2_train`` fold 0 of the tiny dataset for ``epochs`` x 2 iterations; ``extra``: ``--npz``, ``--c``."""
    unknown = set(extra) - {"--npz", "--c"}
    assert not unknown, f"nnunet_train takes --npz and --c, not {unknown}"
    schedule = {"DIFFREFINE_NUM_EPOCHS": str(epochs), "DIFFREFINE_ITERS_PER_EPOCH": "2"}
    schedule["DIFFREFINE_VAL_ITERS_PER_EPOCH"] = "1"
    return nnunet_commands(env).train(
        DATASET, 0, trainer, plans, npz="--npz" in extra, resume="--c" in extra, extra_environment=schedule
    )


def trained_model(
    env: dict, trainer: str, plans: str, extra_env: dict | None = None, npz: bool = True
) -> Path:
    """The results folder of ``trainer`` on the tiny dataset, trained (1 epoch) if it is not yet."""
    folder = Path(env["nnUNet_results"]) / "Dataset980_TinyTrain" / f"{trainer}__{plans}__3d_fullres"
    if not (folder / "fold_0" / "checkpoint_final.pth").is_file():
        nnunet_train(dict(env, **(extra_env or {})), trainer, plans, extra=("--npz",) if npz else ())
    return folder


def with_base_stage_of(env: dict, base_trainer: str, trainer: str, plans: str) -> Path:
    """``trainer``'s results folder holding the finished base stage of the (shared) ``base_trainer``
    model: its checkpoint and out-of-fold validation, as after a run interrupted before the refiner
    stage, so ``nnUNetv2_train ... --c`` trains only the refiner."""
    base = trained_model(env, base_trainer, plans) / "fold_0"
    fold = Path(env["nnUNet_results"]) / "Dataset980_TinyTrain" / f"{trainer}__{plans}__3d_fullres" / "fold_0"
    fold.mkdir(parents=True, exist_ok=True)
    shutil.copy(base / "checkpoint_final.pth", fold)
    shutil.copytree(base / "validation", fold / "validation", dirs_exist_ok=True)
    return fold.parent
