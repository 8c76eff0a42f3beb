"""One resumable stage runner: each stage is skipped when its outputs exist, fails with one line naming
the stage, and its wall time (and the code's commit, when given) is kept in a ``state.json``, including
the time of sittings that stopped before the stage finished (failed, or ended by :func:`exit_on_sigterm`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, ``pkill``) into ``SystemExit(143)`` in the main thread, so that a stage being
    run is unwound like Ctrl-C: :class:`StageRunner` records the time it ran, and a running nnU-Net command
    is killed with the processes it started (:func:`~nnunet_diffrefine.workspace.commands.run_process_group`).
    (SIGKILL cannot be caught: its sitting is lost.)"""

    def _exit(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def git_commit(repo: str | Path) -> str:
    """The checked-out commit of ``repo``, with ``-dirty`` when its work tree has changes."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    return head + ("-dirty" if dirty.strip() else "")


class StageRunner:
    """Runs stages once each. With ``state_file`` the wall time of each stage (seconds, summed over the
    runs that resumed it, those that stopped before it finished included) and, with ``repo``, the commit
    it ran at are written there after every stage, so that results can report them; ``unfinished``
    counts, per stage, the sittings that stopped before it finished (an older file holding only the times
    is read too)."""

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
        self.unfinished: dict[str, int] = dict(state.get("unfinished", {}))

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
        except BaseException as e:  # the time spent counts however the sitting ended (Ctrl-C, SIGTERM too)
            self._record(stage.name, time.perf_counter() - start, finished=False)
            if isinstance(e, StageError) or not isinstance(e, Exception):
                raise
            raise StageError(f"stage '{stage.name}' failed: {type(e).__name__}: {e}") from e
        elapsed = time.perf_counter() - start
        if verify and not stage.is_done():
            self._record(stage.name, elapsed, finished=False)
            raise StageError(f"stage '{stage.name}' finished but its outputs are incomplete")
        self.log(f"{prefix}: done in {elapsed:.1f} s")
        self._record(stage.name, elapsed)
        return "done"

    def _record(self, name: str, elapsed: float, finished: bool = True) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 1)
        if not finished:
            self.unfinished[name] = self.unfinished.get(name, 0) + 1
        if self.repo is not None:
            self.commits[name] = git_commit(self.repo)
        if self.file is not None:
            from nnunet_diffrefine.utils.io import write_json

            state = {"seconds": self.seconds, "commits": self.commits}
            write_json({**state, "unfinished": self.unfinished} if self.unfinished else state, self.file)
