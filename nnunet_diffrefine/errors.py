"""Exceptions the command line turns into one clear error line (no traceback)."""

from __future__ import annotations


class DiffRefineError(Exception):
    """Base class: bad input or a refused operation, with a message that names the file and the problem."""


class InputError(DiffRefineError, ValueError):
    """An input file or folder is missing, unreadable or inconsistent."""
