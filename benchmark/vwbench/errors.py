"""Errors that reach the user as one line and exit code 2 (bad input, missing files)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix. The CLI prints ``error: <message>`` and exits with code 2.

    The message names the problem and, where there is one, the fix.
    """

    exit_code = 2


class CheckpointNotFound(UserError):
    """A model checkpoint is not on disk where vwbench looked for it."""


class CheckpointUnreadable(UserError):
    """A checkpoint is on disk but does not load: a partial download, a damaged file."""


class DataError(UserError):
    """A dataset or annotation file is missing or malformed."""
