"""Crash-safe files (README: "Every file is written to a temporary file in the same folder,
flushed, fsynced and renamed ... a full disk or read-only output folder stops with one line; what
was saved before stays"): a write whose rename fails or is interrupted leaves the old file and
no temporary file, and each OSError becomes one line with the fix that fits it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.results import atomic
from vwbench.results.atomic import atomic_write_bytes, ensure_output_dir, write_error


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_rename_onto_a_folder_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(UserError) as info:
        atomic_write_bytes(target, b"{}")
    message = str(info.value)
    assert message.startswith(f"cannot write {target}: ") and message.endswith("; check the disk, or choose another --out")
    assert "\n" not in message
    assert _leftovers(tmp_path) == [] and (target / "keep.txt").read_text() == "mine"


def test_an_interrupt_at_the_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "result.json"
    target.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_full_disk_while_writing_keeps_the_old_file(tmp_path: Path, disk_full_at) -> None:
    target = tmp_path / "result.json"
    target.write_bytes(b"old")
    disk_full_at(1)
    with pytest.raises(UserError) as info:
        atomic_write_bytes(target, b"new")
    assert str(info.value) == f"cannot write {target}: No space left on device; free space on that disk or choose another --out; what was already saved is kept"
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "fix", "expected_fix"),
    [
        (errno.ENOSPC, None, "free space on that disk or choose another --out; what was already saved is kept"),
        (errno.EDQUOT, None, "free space on that disk or choose another --out; what was already saved is kept"),
        (errno.EROFS, None, "the folder is not writable: choose a writable output directory with --out"),
        (errno.EACCES, "make the dataset folder writable", "make the dataset folder writable"),
        (errno.EIO, None, "check the disk, or choose another --out"),
    ],
)
def test_write_errors_give_the_fix_that_fits(code: int, fix, expected_fix: str) -> None:
    error = write_error(Path("runs/x.json"), OSError(code, os.strerror(code)), fix)
    assert isinstance(error, UserError)
    assert str(error) == f"cannot write runs/x.json: {os.strerror(code)}; {expected_fix}"


def test_an_output_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(UserError) as info:
        ensure_output_dir(blocker, "--out")
    assert str(info.value) == f"cannot write in {blocker}: it is a file, not a folder; choose a folder with --out"
    assert blocker.read_text() == "not a folder"


def test_a_folder_sync_the_file_system_refuses_does_not_fail_the_write(tmp_path: Path, monkeypatch) -> None:
    """Some file systems refuse fsync on folders: the data is synced already, the write succeeds."""
    real_fsync = os.fsync
    folder_fds: list[int] = []
    real_open = os.open

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if Path(path) == tmp_path:
            folder_fds.append(fd)
        return fd

    def fsync(fd):
        if fd in folder_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "open", tracking_open)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    atomic_write_bytes(tmp_path / "a.json", b"data")
    assert (tmp_path / "a.json").read_bytes() == b"data" and folder_fds
