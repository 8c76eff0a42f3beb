"""Shared fixtures: tiny synthetic datasets generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_SHAPE = (48, 48, 48)


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
