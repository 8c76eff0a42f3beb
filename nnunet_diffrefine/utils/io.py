"""Atomic file and folder writes: results appear whole or not at all.

Everything that writes user-visible results goes through these helpers so that an interrupted
or failed run leaves no half-written file or folder behind, and nothing existing is overwritten
unless the caller asks for it. Temporary names are ``.NAME.partial-PID-XXXX``: a run killed before it
could clean up (SIGKILL, power loss) leaves one behind, and the next write of ``NAME`` removes those
whose process no longer runs on this machine.
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


def _partial_prefix(final: Path) -> str:
    return f".{final.name}.partial-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(final: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``final`` left by runs that were killed (their process is gone);
    returns what was removed."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for candidate in final.parent.glob(f".{final.name}.partial-*"):
        pid_text = candidate.name[len(f".{final.name}.partial-") :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _process_alive(int(pid_text)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


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
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(final), dir=final.parent))
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
    remove_stale_partials(final)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_partial_prefix(final), suffix="".join(final.suffixes), dir=final.parent
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


def write_json(obj: Any, path: str | os.PathLike, overwrite: bool = True, indent: int = 4) -> None:
    """Write ``obj`` as indented JSON through a temporary file (folders made as needed)."""
    with atomic_output_file(path, overwrite=overwrite) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent, sort_keys=False)
            f.write("\n")


def read_image_3d(path: str | os.PathLike, what: str = "image"):
    """A 3D single-channel image read with SimpleITK; one :class:`InputError` naming ``path`` and ``what``
    (``"label map"``, ``"segmentation"`` ...) when it cannot be read or is not 3D."""
    import SimpleITK as sitk

    from nnunet_diffrefine.errors import InputError

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise InputError(f"{path}: cannot read the {what} ({lines[-1].strip() if lines else e})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a 3D single-channel {what}, got a {image.GetDimension()}D image")
    return image
