"""File locks that let several vwbench processes share one output folder or cache.

Every unit of work that writes a file (training one word set, evaluating one result) runs under
an exclusive lock named after its cache key, and looks for a finished file *after* taking the
lock. So when two processes ask for the same unit at once, one computes it and the other waits,
then reuses the file; nothing is computed twice and no file is written by two processes.

The locks are ``fcntl`` locks (:class:`filelock.FileLock`), which the kernel drops when their
process dies, so a process killed with ``kill -9`` never leaves a stale lock behind. Lock files
live in ``<root>/.locks/`` and stay there after a run: delete them only when no vwbench process
uses the folder. A lock file removed while one process holds it and another waits lets the
waiting one in (measured with filelock 4.3: the waiter entered 1.4 s after the removal, while
the holder was still inside).

:func:`transient` is the other kind: a lock whose file is deleted when it is let go, for a folder
that must hold nothing but its own files afterwards (a leaderboard that is committed). Its holder
deletes the file *before* unlocking it, and a process that then wins the lock on the deleted file
sees that the path names another file and tries again, so that deletion lets nobody in early.

:func:`compute_once` is the whole pattern; ``vwbench run`` uses it for its trained words and its
result, and a sweep over many units can call it per unit.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

from vwbench import faults
from vwbench.errors import UserError
from vwbench.results.atomic import write_error

T = TypeVar("T")
LOCK_DIR = ".locks"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def lock_path(root: Path, name: str) -> Path:
    """The lock file of unit ``name`` under ``root`` (names are made file-safe and kept short)."""
    safe = _SAFE.sub("_", name).strip("._")[:80] or "unit"
    if safe != name or len(name) > 80:
        safe = f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return Path(root) / LOCK_DIR / f"{safe}.lock"


@contextmanager
def exclusive(root: Path, name: str, *, what: str, log: Callable[[str], None] | None = None, timeout: float = -1) -> Iterator[Path]:
    """Hold the exclusive lock of unit ``name`` under ``root``; yields the lock file's path.

    When another process holds it, ``log`` is told once (``what`` names the unit for a human) and
    the call waits, up to ``timeout`` seconds (``-1``: as long as it takes). A lock that cannot be
    created (read-only or full disk) is a one-line :class:`UserError`."""
    path = lock_path(root, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        faults.point("lock:create")
        lock = FileLock(str(path), thread_local=False)
        _acquire(lock, path, what, log, timeout)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        faults.point(f"lock:{name.split('-', 1)[0]}")
        yield path
    finally:
        lock.release()


@contextmanager
def held_if_free(root: Path, name: str) -> Iterator[bool]:
    """The lock of unit ``name`` under ``root`` if no other process holds it, without waiting:
    yields whether it is held (``False`` also where it cannot be created). For chores such as
    deleting a unit's leftovers, which must never touch what a live process is working on."""
    path = lock_path(root, name)
    lock = FileLock(str(path), thread_local=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _acquire(lock: FileLock, path: Path, what: str, log: Callable[[str], None] | None, timeout: float) -> None:
    """Take ``lock`` (file ``path``); when another process holds it, tell ``log`` and wait."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log is not None:
            log(f"waiting for another vwbench process working on {what} (lock {path})")
        faults.point("lock:wait")
        try:
            lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise UserError(f"another vwbench process has been working on {what} for over {timeout:.0f}s (lock {path}); wait for it or stop it") from exc


@contextmanager
def transient(path: Path, *, what: str, log: Callable[[str], None] | None = None, timeout: float = -1) -> Iterator[Path]:
    """Hold the exclusive lock whose file is ``path`` (its folder must exist) and delete that file
    before letting go, so nothing stays behind; waits like :func:`exclusive`. An ``OSError``
    propagates: the caller names the file it could not write. A process killed while holding it
    leaves the file (the kernel still drops the lock); the next holder deletes it."""
    path = Path(path)
    lock = _acquire_current(path, what, log, timeout)
    try:
        yield path
    finally:
        try:
            with suppress(OSError):  # a file left behind only costs the next holder a delete
                path.unlink()
        finally:
            lock.release()


def _acquire_current(path: Path, what: str, log: Callable[[str], None] | None, timeout: float) -> FileLock:
    """The lock on the file that ``path`` names now: a lock won on a file its holder deleted
    meanwhile is let go and taken again on the new file."""
    while True:
        held: list[os.stat_result] = []
        lock = FileLock(str(path), thread_local=False, on_acquired=lambda fd: held.append(os.fstat(fd)))
        _acquire(lock, path, what, log, timeout)
        try:
            current = bool(held) and os.path.samestat(held[-1], os.stat(path))
        except FileNotFoundError:
            current = False
        except BaseException:
            lock.release()
            raise
        if current:
            return lock
        lock.release()


def compute_once(
    root: Path,
    name: str,
    *,
    load: Callable[[], T | None],
    compute: Callable[[], T],
    what: str,
    log: Callable[[str], None] | None = None,
) -> tuple[T, bool]:
    """``load()`` the finished unit, or compute it under its lock; returns ``(value, reused)``.

    ``load`` must return ``None`` for a missing or damaged unit (then it is computed again) and
    ``compute`` must store the unit atomically before returning. The unlocked first look lets a
    process skip finished units without touching locks (a read-only results folder can still be
    read); the second look, under the lock, catches a unit another process finished meanwhile."""
    found = load()
    if found is not None:
        return found, True
    with exclusive(root, name, what=what, log=log):
        found = load()
        if found is not None:
            return found, True
        return compute(), False

