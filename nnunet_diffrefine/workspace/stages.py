"""One resumable stage runner: each stage is skipped when its outputs exist, fails with one line naming
the stage, and its wall time (and the code's commit, when given) is kept in a ``state.json``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_diffrefine.errors import DiffRefineError


class StageError(DiffRefineError):
    """A stage failed; the message names the stage."""


@dataclass
class Stage:
    """One step. ``is_done`` decides whether a re-run can skip it (and, after it ran, whether it finished)."""

    name: str
    description: str
    run: Callable[[], None]
    is_done: Callable[[], bool]


def git_commit(repo: str | Path) -> str:
    """The checked-out commit of ``repo``, with ``-dirty`` when its work tree has changes."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    return head + ("-dirty" if dirty.strip() else "")


class StageRunner:
    """Runs stages once each. With ``state_file`` the wall time of each stage (seconds, summed over the
    runs that resumed it) and, with ``repo``, the commit it ran at are written there after every stage,
    so that results can report them (an older file holding only the times is read too)."""

    def __init__(
        self,
        state_file: str | Path | None = None,
        repo: str | Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.file = Path(state_file) if state_file else None
        self.repo, self.log = repo, log
        state = json.loads(self.file.read_text()) if self.file is not None and self.file.is_file() else {}
        if state and "seconds" not in state:
            state = {"seconds": state}
        self.seconds: dict[str, float] = dict(state.get("seconds", {}))
        self.commits: dict[str, str] = dict(state.get("commits", {}))

    def run(self, stages: Sequence[Stage]) -> dict[str, str]:
        """Run ``stages`` in order; returns ``{stage name: 'done' | 'skipped'}``. Raises
        ``StageError("stage 'NAME' failed: ...")`` on the first failure, or when a stage finished without
        its outputs."""
        status: dict[str, str] = {}
        for i, stage in enumerate(stages, start=1):
            status[stage.name] = self.run_one(stage, f"[{i}/{len(stages)}] {stage.name}")
        return status

    def __call__(self, name: str, is_done: Callable[[], bool], action: Callable[[], None]) -> str:
        """One stage given by its parts (see :meth:`run_one`); not checked by ``is_done`` afterwards, so that
        a stage that always runs (``is_done`` constantly false) can be written this way."""
        return self.run_one(Stage(name, name, action, is_done), f"[{name}]", verify=False)

    def run_one(self, stage: Stage, prefix: str, verify: bool = True) -> str:
        """Run ``stage`` unless it is done; ``'done'`` or ``'skipped'``. With ``verify`` a stage whose
        ``is_done`` is still false after it ran is a :class:`StageError`."""
        if stage.is_done():
            self.log(f"{prefix}: outputs exist, skipped")
            return "skipped"
        self.log(
            f"{prefix}: {stage.description}" if stage.description != stage.name else f"{prefix}: running"
        )
        start = time.perf_counter()
        try:
            stage.run()
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the stage
            raise StageError(f"stage '{stage.name}' failed: {type(e).__name__}: {e}") from e
        elapsed = time.perf_counter() - start
        if verify and not stage.is_done():
            raise StageError(f"stage '{stage.name}' finished but its outputs are incomplete")
        self.log(f"{prefix}: done in {elapsed:.1f} s")
        self._record(stage.name, elapsed)
        return "done"

    def _record(self, name: str, elapsed: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 1)
        if self.repo is not None:
            self.commits[name] = git_commit(self.repo)
        if self.file is not None:
            from nnunet_diffrefine.utils.io import write_json

            write_json({"seconds": self.seconds, "commits": self.commits}, self.file)
