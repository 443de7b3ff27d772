"""Write files so that a reader never sees half of one: temp file in the same folder, flush,
fsync, rename, fsync the folder. A crash leaves either the old file or the new one, never a torn
one; a full disk or a read-only folder is a one-line :class:`UserError` and leaves the old file.

:func:`write_file_set` writes a set of files that belong together (a leaderboard's
``leaderboard.json``, ``README.md`` and ``index.html``; a sweep's table and plot; an analysis's
JSON and PNG) all or nothing, as far as a file system allows. The caller renders every file in
memory first, so a rendering failure writes nothing. Then every target is checked
(:func:`check_targets`: a folder or other non-file where a file goes is a one-line error before
anything is written), every file is written to a temporary file beside its target and synced,
and only then are the temporary files renamed over the targets. A full disk or a read-only
folder fails in the temporary-file phase, which leaves every old file as it was; a rename that
fails puts back the files already renamed (each old file is kept as a hidden backup until every
rename succeeded), which leaves the old set as it was too.

Two processes writing sets into one folder take turns: the set lock (:data:`SET_LOCK`, a hidden
file in that folder, see :func:`vwbench.results.locks.transient`) is held from before the first
temporary file to after the last rename, so the folder ends with one whole set, the later one.
The lock file is deleted on release, so a successful write leaves only the set in the folder.

What a crash (``kill -9``, a power loss) can still leave: killed between two renames, a mixed
set (some files new, some old) with the hidden backups and temporary files beside it; killed
anywhere while holding the lock, the hidden lock file. POSIX has no rename of several files at
once, so only a later write can repair that: the next write of the same set, under the lock,
deletes those leftovers (and the lock file) and writes every file of the set again.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from vwbench import faults
from vwbench.errors import UserError
from vwbench.results.schema import printable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, exc: OSError, unwritable_fix: str | None = None) -> UserError:
    """The one-line error for an ``OSError`` met while writing ``path``, with the fix
    (``unwritable_fix`` for a read-only folder where ``--out`` cannot move the file)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk or choose another --out; what was already saved is kept"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = unwritable_fix or "the folder is not writable: choose a writable output directory with --out"
    else:
        fix = "check the disk, or choose another --out"
    return UserError(f"cannot write {path}: {reason}; {fix}")


def ensure_output_dir(folder: Path, flag: str = "--out", *, probe: bool = True) -> Path:
    """Create ``folder`` and check that a file can be written in it, before any long work whose
    results would go there: a bad ``--out`` is a one-line error at once, not after the work.
    ``probe=False`` accepts an existing folder as it is: a read-only copy of finished runs still
    answers `vwbench run` and `sweep` from what it stores."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"cannot write in {folder}: it is a file, not a folder; choose a folder with {flag}")
    if folder.is_dir() and not probe:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, check_file = tempfile.mkstemp(dir=folder, prefix=".vwbench-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(check_file)
    except OSError as exc:
        raise UserError(f"cannot write in {folder} ({exc.strerror or exc}): choose a writable folder with {flag}") from exc
    return folder


@contextmanager
def output_dir(folder: Path, flag: str = "--out", *, probe: bool = True) -> Iterator[Path]:
    """:func:`ensure_output_dir` for the work inside the block; when that work fails, the folders
    this call made are removed again if nothing was written in them (a bad dataset or checkpoint
    found after ``--out`` was made leaves no empty folder behind)."""
    folder = Path(folder)
    made = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    ensure_output_dir(folder, flag, probe=probe)
    try:
        yield folder
    except BaseException:
        if made is not None:
            _remove_if_empty(made)
        raise


def _remove_if_empty(root: Path) -> None:
    """Remove ``root`` and its subfolders when no file (nor link) is anywhere below it but lock
    files that no process holds (the failed work's own: they stay after their lock is let go)."""
    tree = list(os.walk(root, topdown=False))
    locks = []
    for folder, names, files in tree:
        if any(os.path.islink(os.path.join(folder, n)) for n in names):
            return
        for name in files:
            # vwbench.results.locks.LOCK_DIR (that module imports this one)
            if os.path.basename(folder) != ".locks" or not name.endswith(".lock") or os.path.islink(os.path.join(folder, name)):
                return
            locks.append(os.path.join(folder, name))
    if not all(map(_removed_if_free, locks)):
        return  # another process holds one: the folder is in use
    with suppress(OSError):
        for dirpath, _, _ in tree:
            os.rmdir(dirpath)


def _removed_if_free(path: str) -> bool:
    """Delete lock file ``path`` unless a process holds it: it is locked without waiting (the
    ``flock`` :class:`filelock.FileLock` takes) and deleted while held. Whether it is gone."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power loss after it keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the data itself is already synced
    finally:
        os.close(fd)


def _synced_temp(path: Path, data: bytes, phase: str) -> str:
    """``data`` in a new temporary file beside ``path`` (created with its folder), flushed and
    synced, with normal permissions; returns its name. On any failure it is removed and the
    error propagates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            faults.point(f"write:{phase}:tmp")
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: Path, data: bytes, *, phase: str = "file", unwritable_fix: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically. ``phase`` names the kind of file for the fault
    points (``write:<phase>:tmp|synced|renamed``) the crash tests stop at; ``unwritable_fix`` is
    the error's advice for a read-only folder (see :func:`write_error`)."""
    path = Path(path)
    try:
        tmp = _synced_temp(path, data, phase)
    except OSError as exc:
        raise write_error(path, exc, unwritable_fix) from exc
    try:
        faults.point(f"write:{phase}:synced")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc, unwritable_fix) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    faults.point(f"write:{phase}:renamed")


def atomic_write_json(path: Path, payload: Any, *, phase: str = "file", unwritable_fix: str | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), phase=phase, unwritable_fix=unwritable_fix)


def check_targets(paths: list[Path], flag: str = "--out") -> None:
    """A one-line :class:`UserError` when a file in ``paths`` cannot be written because something
    that is not a file is in the way (a folder where the file goes, a file where a folder goes)."""
    for path in map(Path, paths):
        for parent in reversed(path.parents):
            if parent.exists() and not parent.is_dir():
                raise UserError(f"cannot write {printable(str(path))}: {printable(str(parent))} is a file, not a folder; move it away or choose another {flag}")
        if path.exists() and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise UserError(f"cannot write {printable(str(path))}: it is {kind}; move it away or choose another {flag}")


SET_LOCK = ".vwbench-file-set.lock"


def write_file_set(files: dict[Path, bytes], flag: str = "--out", *, unwritable_fix: str | None = None) -> None:
    """Write every ``path: data`` of ``files``: all targets checked, then, under the lock of each
    target's folder (:data:`SET_LOCK`, deleted again on release), the temporary files a killed
    writer of these targets left removed, all temporary files written and synced, then all
    renamed (:func:`_publish`: a failed rename puts back the files already renamed). An
    ``OSError`` is a one-line :class:`UserError` (:func:`write_error`, with ``unwritable_fix`` for
    a read-only folder) and removes the temporary files. Also the way to write one file into a
    folder that is not vwbench's own (a dataset's, a result's): nothing stays behind there."""
    files = {Path(p): data for p, data in files.items()}
    check_targets(list(files), flag)
    with _folder_locks(list(files), unwritable_fix):
        for path in files:
            remove_stale_temps(path)  # what a writer killed while publishing left: temps, backups
        temps = _write_temps(files, unwritable_fix)
        try:
            check_targets(list(files), flag)  # nothing appeared in the way while the files were written
            _publish(temps)
        finally:
            for tmp, _ in temps:
                Path(tmp).unlink(missing_ok=True)


def _set_error(path: Path, exc: OSError, unwritable_fix: str | None = None) -> UserError:
    return write_error(Path(printable(str(path))), exc, unwritable_fix)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # a writer waiting behind another says so


@contextmanager
def _folder_locks(paths: list[Path], unwritable_fix: str | None = None) -> Iterator[None]:
    """Hold the set lock of every folder in ``paths`` (created if missing), in a fixed order, so two
    sets into one folder are written one after the other, each whole."""
    from vwbench.results.locks import transient  # locks.py imports this module

    first = {path.parent: path for path in reversed(paths)}
    with ExitStack() as held:
        for folder in sorted(first, key=str):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                held.enter_context(transient(folder / SET_LOCK, what=f"the files in {printable(str(folder))}", log=_say))
            except OSError as exc:
                raise _set_error(first[folder], exc, unwritable_fix) from exc
        yield


def _write_temps(files: dict[Path, bytes], unwritable_fix: str | None = None) -> list[tuple[str, Path]]:
    """Each file's data in a synced temporary file beside it: ``(temp, target)`` pairs."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            try:
                temps.append((_synced_temp(path, data, "file-set"), path))
            except OSError as exc:
                raise _set_error(path, exc, unwritable_fix) from exc
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    return temps


def _publish(temps: list[tuple[str, Path]]) -> None:
    """Rename every temporary file over its target, all or nothing as far as POSIX allows: each old
    target stays linked as a hidden backup until every rename succeeded, and a rename that fails
    (or an interrupt) puts the targets already renamed back as they were. A crash (``kill -9``)
    between two renames leaves the set mixed, with its backups and temporary files beside it,
    until the next write of the set replaces every file and deletes those."""
    backups: dict[Path, Path | None] = {}
    renamed: list[Path] = []
    try:
        for _, path in temps:
            backups[path] = _backup(path)
        for tmp, path in temps:
            try:
                faults.point("write:file-set:rename")
                os.replace(tmp, path)
            except OSError as exc:
                raise _set_error(path, exc) from exc
            renamed.append(path)
    except BaseException:
        _roll_back(renamed, backups)
        raise
    for folder in dict.fromkeys(path.parent for _, path in temps):
        _fsync_dir(folder)
    _remove_backups(backups)


def _backup(path: Path) -> Path | None:
    """A second name for the old ``path`` (``None`` when there is none), to put it back from."""
    if not os.path.lexists(path):  # check_targets let only a file (or a link to one) through
        return None
    backup = path.with_name(f".{path.name}.previous.tmp")
    try:
        backup.unlink(missing_ok=True)
        try:
            os.link(path, backup, follow_symlinks=False)
        except OSError:  # a file system without hard links: a copy serves as well
            shutil.copy2(path, backup, follow_symlinks=False)
    except OSError as exc:
        raise _set_error(path, exc) from exc
    return backup


def _roll_back(renamed: list[Path], backups: dict[Path, Path | None]) -> None:
    """Put every target of ``renamed`` back as it was before (a new one is removed again)."""
    for path in reversed(renamed):
        backup = backups.pop(path)
        with suppress(OSError):
            if backup is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(backup, path)
    _remove_backups(backups)


def _remove_backups(backups: dict[Path, Path | None]) -> None:
    for backup in backups.values():
        if backup is not None:
            with suppress(OSError):
                backup.unlink(missing_ok=True)


def remove_stale_temps(path: Path) -> int:
    """Delete the temp files a killed writer of ``path`` left beside it (``.NAME.*.tmp``);
    returns how many. Call it only while holding ``path``'s lock: a live writer's temp file has
    the same pattern."""
    path = Path(path)
    removed = 0
    try:
        entries = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return 0
    for tmp in entries:
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed
