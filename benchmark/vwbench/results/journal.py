"""What this process has saved so far, so that Ctrl-C can say what is kept.

The run records each artefact once it is on disk (trained words, a training checkpoint, a
result); the CLI prints :func:`summary` when the user interrupts it.
"""

from __future__ import annotations

from pathlib import Path

_saved: dict[str, str] = {}  # path -> description, in the order first saved
_reused: set[str] = set()  # the paths of _saved that an earlier run wrote
_remote_out: list[Path] = []  # where jobs of other processes save what this one never hears of


def jobs_elsewhere(out: Path | None) -> None:
    """Note that jobs in other processes (a Ray or Slurm sweep's) write under ``out``: what they
    saved before an interruption (training checkpoints) is not recorded here. ``None`` clears it."""
    _remote_out[:] = [Path(out)] if out is not None else []


def record(path: Path, description: str, *, reused: bool = False) -> None:
    """Note that ``path`` is on disk, complete (a later record of the same path replaces it);
    ``reused``: an earlier run wrote it and this one took it as it was (a file this process
    saved itself stays "saved" when a later task of the same command reuses it)."""
    written_here = str(path) in _saved and str(path) not in _reused
    forget(path)
    _saved[str(path)] = description
    if reused and not written_here:
        _reused.add(str(path))


def forget(path: Path) -> None:
    """Note that ``path`` was removed (a training checkpoint, once its words are saved)."""
    _saved.pop(str(path), None)
    _reused.discard(str(path))


def saved() -> list[tuple[str, str]]:
    """``(path, description)`` of everything saved (or reused), oldest first."""
    return list(_saved.items())


def summary() -> str:
    """One line: what was saved (and what was reused from an earlier run), and that the same
    command resumes from it."""
    if not _saved:
        if _remote_out:
            return (f"nothing was saved by this process yet; jobs it started may have saved training checkpoints under {_remote_out[0]}: "
                    "run the same command again to resume from them")
        return "nothing was saved yet"
    parts = []
    for verb, reused in (("saved", False), ("reused", True)):
        items = [f"{what}: {path}" for path, what in _saved.items() if (path in _reused) == reused]
        if items:
            parts.append(f"{verb} {'; '.join(items)}")
    return f"{'; '.join(parts)}; run the same command again to resume from there"


def reset() -> None:
    _saved.clear()
    _reused.clear()
    _remote_out.clear()
