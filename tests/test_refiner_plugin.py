"""A refiner added from outside the package: the README's example module and entry point, installed
with pip, is found by the registry and the command line and passes the conformance test unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_file(name: str) -> str:
    """The README code block that starts with ``# file: NAME``."""
    blocks = re.findall(r"```\w*\n# file: (\S+)\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    found = [body for file, body in blocks if file == name]
    assert len(found) == 1, f"README.md has {len(found)} blocks for {name}"
    return found[0]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The README's example package, installed with pip into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    package, site = root / "package", root / "site"
    package.mkdir()
    (package / "nudge_refiner.py").write_text(readme_file("nudge_refiner.py"))
    (package / "pyproject.toml").write_text(readme_file("pyproject.toml"))
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
    ]
    subprocess.run([*pip, str(package)], check=True, capture_output=True, text=True)
    return site


def _run(site: Path, *command: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run(list(command), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_readme_example_is_short():
    code = [line for line in readme_file("nudge_refiner.py").splitlines() if line.strip()]
    assert len(code) <= 40


def test_an_installed_refiner_is_listed_offered_and_passes_the_conformance_test(plugin_site):
    listed = _run(
        plugin_site,
        sys.executable,
        "-c",
        "from nnunet_diffrefine.refine.registry import *; print(available_refiners())",
    )
    assert listed.returncode == 0 and "'nudge'" in listed.stdout, listed.stderr
    help_text = _run(plugin_site, str(BIN / "nnunet-diffrefine"), "train-refiner", "--help")
    assert help_text.returncode == 0 and "nudge" in help_text.stdout and "kernel" in help_text.stdout
    conformance = _run(
        plugin_site,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / "test_refiner_conformance.py"),
        "-k",
        "nudge",
    )
    assert conformance.returncode == 0, conformance.stdout[-3000:]
    assert re.search(r"\b[4-9] passed", conformance.stdout), conformance.stdout[-500:]
