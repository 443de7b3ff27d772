"""What this process has saved so far, so that Ctrl-C can say what is kept.

The run records each artefact once it is on disk (trained words, a training checkpoint, a
result); the CLI prints :func:`summary` when the user interrupts it.
"""

from __future__ import annotations

from pathlib import Path

_saved: dict[str, str] = {}  # path -> description, in the order first saved


def record(path: Path, description: str) -> None:
    """Note that ``path`` is on disk, complete (a later record of the same path replaces it)."""
    _saved.pop(str(path), None)
    _saved[str(path)] = description


def forget(path: Path) -> None:
    """Note that ``path`` was removed (a training checkpoint, once its words are saved)."""
    _saved.pop(str(path), None)


def saved() -> list[tuple[str, str]]:
    """``(path, description)`` of everything saved, oldest first."""
    return list(_saved.items())


def summary() -> str:
    """One line: what was saved and that the same command resumes from it."""
    if not _saved:
        return "nothing was saved yet"
    items = "; ".join(f"{what}: {path}" for path, what in _saved.items())
    return f"saved {items}; run the same command again to resume from there"


def reset() -> None:
    _saved.clear()
