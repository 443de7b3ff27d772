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
folder fails in the temporary-file phase, which leaves every old file as it was.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from vwbench import faults
from vwbench.errors import UserError
from vwbench.results.schema import printable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, exc: OSError) -> UserError:
    """The one-line error for an ``OSError`` met while writing ``path``, with the fix."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk or choose another --out; what was already saved is kept"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "the folder is not writable: choose a writable output directory with --out"
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


def atomic_write_bytes(path: Path, data: bytes, *, phase: str = "file") -> None:
    """Write ``data`` to ``path`` atomically. ``phase`` names the kind of file for the fault
    points (``write:<phase>:tmp|synced|renamed``) the crash tests stop at."""
    path = Path(path)
    try:
        tmp = _synced_temp(path, data, phase)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        faults.point(f"write:{phase}:synced")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    faults.point(f"write:{phase}:renamed")


def atomic_write_json(path: Path, payload: Any, *, phase: str = "file") -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), phase=phase)


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


def write_file_set(files: dict[Path, bytes], flag: str = "--out") -> None:
    """Write every ``path: data`` of ``files``: all targets checked, then all temporary files
    written and synced, then all renamed. An ``OSError`` is a one-line :class:`UserError`
    (:func:`write_error`) and removes the temporary files."""
    files = {Path(p): data for p, data in files.items()}
    check_targets(list(files), flag)
    temps: list[tuple[str, Path]] = []
    current = next(iter(files), Path("."))
    try:
        for path, data in files.items():
            current = path
            temps.append((_synced_temp(path, data, "file-set"), path))
        check_targets(list(files), flag)  # nothing appeared in the way while the files were written
        while temps:
            tmp, current = temps[0]
            os.replace(tmp, current)
            temps.pop(0)
    except OSError as exc:
        raise write_error(Path(printable(str(current))), exc) from exc
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
    for folder in dict.fromkeys(p.parent for p in files):
        _fsync_dir(folder)


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
