"""Write a set of files that belong together (a leaderboard's ``leaderboard.json``, ``README.md``
and ``index.html``; a sweep's table and plot) all or nothing, as far as a file system allows.

The caller renders every file in memory first, so a rendering failure writes nothing. Then every
target is checked (a folder or other non-file where a file goes is a one-line error before
anything is written), every file is written to a temporary file beside its target and synced,
and only then are the temporary files renamed over the targets. A full disk or a read-only
folder fails in the temporary-file phase, which leaves every old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vwbench.errors import UserError
from vwbench.results.atomic import write_error
from vwbench.results.schema import printable


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_set(files: dict[Path, bytes], flag: str = "--out") -> None:
    """Write every ``path: data`` of ``files``: all targets checked, then all temporary files
    written and synced, then all renamed. An ``OSError`` is a one-line :class:`UserError`
    (:func:`vwbench.results.atomic.write_error`) and removes the temporary files."""
    files = {Path(p): data for p, data in files.items()}
    check_targets(list(files), flag)
    temps: list[tuple[str, Path]] = []
    current = next(iter(files), Path("."))
    try:
        for path, data in files.items():
            current = path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
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
