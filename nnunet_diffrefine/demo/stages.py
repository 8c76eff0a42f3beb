"""A tiny stage runner: each stage is skipped when its outputs exist and fails with one clear line."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnunet_diffrefine.errors import DiffRefineError


class StageError(DiffRefineError):
    """A demo stage failed; the message names the stage."""


@dataclass
class Stage:
    """One step of the demo. ``is_done`` decides whether a re-run can skip it."""

    name: str
    description: str
    run: Callable[[], None]
    is_done: Callable[[], bool]


def run_stages(stages: Sequence[Stage], log: Callable[[str], None] = print) -> dict[str, str]:
    """Run ``stages`` in order; returns ``{stage name: 'done' | 'skipped'}``.

    Raises ``StageError("stage 'NAME' failed: ...")`` on the first failure.
    """
    status: dict[str, str] = {}
    for i, stage in enumerate(stages, start=1):
        prefix = f"[{i}/{len(stages)}] {stage.name}"
        if stage.is_done():
            log(f"{prefix}: outputs exist, skipped")
            status[stage.name] = "skipped"
            continue
        log(f"{prefix}: {stage.description}")
        start = time.perf_counter()
        try:
            stage.run()
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the stage
            raise StageError(f"stage '{stage.name}' failed: {type(e).__name__}: {e}") from e
        if not stage.is_done():
            raise StageError(f"stage '{stage.name}' finished but its outputs are incomplete")
        log(f"{prefix}: done in {time.perf_counter() - start:.1f} s")
        status[stage.name] = "done"
    return status


def run_command(command: Sequence[str], env: dict[str, str], stage: str) -> None:
    """Run an nnU-Net command with its output shown; a non-zero exit is a ``StageError`` for ``stage``."""
    result = subprocess.run(list(command), env=env)
    if result.returncode != 0:
        raise StageError(
            f"stage '{stage}' failed: '{' '.join(command)}' exited with code {result.returncode}"
        )


def command_path(name: str) -> str:
    """A console script of the running environment (nnU-Net's commands live next to python)."""
    import sys

    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name
