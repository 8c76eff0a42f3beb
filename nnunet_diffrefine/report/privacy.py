"""The case id sent to an endpoint: a pseudonym unless the user asks to send the real one.

The pseudonym is ``case-`` and the first 12 hex digits of HMAC-SHA256(secret, case id). The secret is
32 random bytes made once per installation and user and kept in :func:`secret_file` (mode 0600; it
never leaves the machine), so the pseudonym is stable for a case across runs and batches but cannot
be computed, or reversed, from the file name without the secret. When the file cannot be read or
written, a secret for this process only is used (the pseudonym is then stable within the run only)
and :func:`pseudonym` says so.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from nnunet_diffrefine.environment import REPORT_SECRET_VARIABLE, report_secret_file, user_config_folder

SECRET_ENV = REPORT_SECRET_VARIABLE
"""Environment variable naming the secret's file (default: under ``$XDG_CONFIG_HOME`` or ``~/.config``)."""

_PROCESS_SECRET = secrets.token_bytes(32)


def secret_file() -> Path:
    """Where the installation's secret is kept."""
    chosen = report_secret_file()
    if chosen is not None:
        return chosen
    return user_config_folder() / "nnunet-diffrefine" / "report-pseudonym.key"


def installation_secret() -> tuple[bytes, bool]:
    """The secret and whether it is the stored one (``False``: a secret for this process only)."""
    path = secret_file()
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-pseudonym-")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
                os.link(tmp, path)  # atomic, and never replaces a secret made meanwhile
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        secret = path.read_bytes()
    except OSError:
        return _PROCESS_SECRET, False
    return (secret, True) if len(secret) >= 16 else (_PROCESS_SECRET, False)


def pseudonym(case_id: str) -> tuple[str, bool]:
    """``case-`` + 12 hex digits for ``case_id``, and whether it is stable across runs."""
    secret, stable = installation_secret()
    digest = hmac.new(secret, case_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"case-{digest[:12]}", stable
