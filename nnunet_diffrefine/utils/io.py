"""Atomic file and folder writes: results appear whole or not at all.

Everything that writes user-visible results goes through these helpers so that an interrupted
or failed run leaves no half-written file or folder behind, and nothing existing is overwritten
unless the caller asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class OutputExistsError(FileExistsError):
    """Raised when a result would overwrite something the user already has."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output_dir(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that is renamed to ``final`` on success.

    On any exception the temporary folder is removed and ``final`` is left untouched.
    ``final`` must not exist unless ``overwrite`` is set, in which case it is replaced only
    after the new content is complete.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f"{final} already exists; refusing to overwrite it (remove it or pass --overwrite)"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes 0700; results should be shared like any folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, trash / final.name)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_output_file(final: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the same folder; it is renamed to ``final`` on success.

    The temporary name keeps ``final``'s suffixes (``.nii.gz`` stays ``.nii.gz``) so that writers
    that choose the format from the extension still work.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} already exists; refusing to overwrite it")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.partial-", suffix="".join(final.suffixes), dir=final.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_current_umask())
    tmp = Path(tmp_name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)


def write_json(obj: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``obj`` as indented JSON through a temporary file."""
    with atomic_output_file(path, overwrite=overwrite) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=4, sort_keys=False)
            f.write("\n")
