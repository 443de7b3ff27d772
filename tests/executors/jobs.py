"""Module-level job functions for the executor tests (jobs must be importable by name)."""

from __future__ import annotations

from vwbench.errors import UserError


def square(x: int, reporter=None) -> int:
    if reporter is not None:
        reporter.log(f"squared {x}")
    return x * x


def refuse(x: int, reporter=None) -> int:
    raise UserError(f"value {x} is not allowed; pick another")


def broken(x: int, reporter=None) -> int:
    raise ZeroDivisionError("a bug")


def touch(path: str, reporter=None) -> str:
    """Leaves a file behind, so a test can tell which jobs ran."""
    from pathlib import Path

    Path(path).touch()
    return path
