"""Mutation round 9 pins for vwbench.results.atomic and .locks: what a failed --out folder keeps
(a link, a Ctrl-C), the write-check file, the errors' advice, file permissions, temp files after a
failed rename, the stale-temp pattern, a transient lock won on a deleted file, held_if_free's
no-wait."""

from __future__ import annotations

import errno
import os
import stat
import time

import pytest
from filelock import FileLock

from vwbench.errors import UserError
from vwbench.results import locks
from vwbench.results.atomic import (
    _removed_if_free,
    atomic_write_bytes,
    check_targets,
    ensure_output_dir,
    output_dir,
    remove_stale_temps,
    write_error,
)
from vwbench.results.locks import held_if_free, lock_path, transient


def test_a_lock_file_already_gone_counts_as_removed(tmp_path) -> None:
    assert _removed_if_free(str(tmp_path / ".locks" / "gone.lock")) is True


def test_a_link_in_a_failed_out_folder_keeps_every_folder_below_it(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), output_dir(out):
        (out / "sub").mkdir()
        (out / "weights").symlink_to(elsewhere, target_is_directory=True)
        raise RuntimeError("failed")
    assert (out / "sub").is_dir() and (out / "weights").is_symlink()


def test_ctrl_c_in_a_new_out_folder_removes_it(tmp_path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(KeyboardInterrupt), output_dir(out):
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()


def test_the_write_check_leaves_nothing_in_the_folder(tmp_path) -> None:
    ensure_output_dir(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_no_probe_still_creates_a_missing_folder(tmp_path) -> None:
    assert ensure_output_dir(tmp_path / "a" / "b", probe=False).is_dir()


@pytest.mark.parametrize(("code", "advice"), [
    (errno.EDQUOT, "free space on that disk or choose another --out; what was already saved is kept"),
    (errno.ENOSPC, "free space on that disk or choose another --out; what was already saved is kept"),
    (errno.EPERM, "the folder is not writable: choose a writable output directory with --out"),
    (errno.EIO, "check the disk, or choose another --out"),
])
def test_write_errors_give_the_advice_of_their_kind(tmp_path, code, advice) -> None:
    message = str(write_error(tmp_path / "r.json", OSError(code, os.strerror(code))))
    assert message == f"cannot write {tmp_path / 'r.json'}: {os.strerror(code)}; {advice}"


def test_an_atomic_write_has_the_permissions_of_a_normal_file(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "r.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_a_failed_rename_leaves_no_temp_file(tmp_path) -> None:
    target = tmp_path / "r.json"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder: the rename fails
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_bytes(target, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_folder_in_the_way_is_named_as_a_folder(tmp_path) -> None:
    (tmp_path / "index.html").mkdir()
    with pytest.raises(UserError, match="it is a folder; move it away"):
        check_targets([tmp_path / "index.html"])
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UserError, match="it is not a regular file; move it away"):
        check_targets([tmp_path / "pipe"])


def test_stale_temps_of_one_file_spare_a_longer_names_temps(tmp_path) -> None:
    (tmp_path / ".a.123.tmp").write_text("stale")
    (tmp_path / ".ab.456.tmp").write_text("another file's live temp")
    assert remove_stale_temps(tmp_path / "a") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ab.456.tmp"]


def test_a_transient_lock_won_on_a_deleted_file_is_taken_again_on_the_new_one(tmp_path, monkeypatch) -> None:
    path = tmp_path / ".vwbench-file-set.lock"
    real, calls = locks._acquire, []

    def acquire_then_holder_deletes(lock, p, what, log, timeout):
        real(lock, p, what, log, timeout)
        calls.append(p)
        if len(calls) == 1:
            os.unlink(p)  # the previous holder deleted the file just as this process won it

    monkeypatch.setattr(locks, "_acquire", acquire_then_holder_deletes)
    with transient(path, what="the files"):
        assert path.is_file() and len(calls) == 2
    assert not path.exists()


def test_held_if_free_does_not_wait_for_a_held_lock(tmp_path) -> None:
    path = lock_path(tmp_path, "words-1")
    path.parent.mkdir()
    other = FileLock(str(path), thread_local=False)
    other.acquire()
    try:
        start = time.monotonic()
        with held_if_free(tmp_path, "words-1") as held:
            assert held is False
        assert time.monotonic() - start < 1.0
    finally:
        other.release()
    with held_if_free(tmp_path, "words-1") as held:
        assert held is True


def test_only_lock_files_in_the_locks_folder_count_as_leftovers(tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), output_dir(out):
        (out / "weights.lock").write_text("a file the work wrote")
        raise RuntimeError("failed")
    assert (out / "weights.lock").read_text() == "a file the work wrote"
    out2 = tmp_path / "out2"
    with pytest.raises(RuntimeError), output_dir(out2):
        (out2 / ".locks").mkdir()
        (out2 / ".locks" / "notes.txt").write_text("x")
        raise RuntimeError("failed")
    assert (out2 / ".locks" / "notes.txt").is_file()


def test_a_folder_whose_lock_another_process_holds_is_not_touched(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    other = FileLock(str(lock_path(out, "words-1")), thread_local=False)
    removed = []
    real_rmdir = os.rmdir
    monkeypatch.setattr(os, "rmdir", lambda path, *a, **k: (removed.append(str(path)), real_rmdir(path, *a, **k))[1])
    with pytest.raises(RuntimeError), output_dir(out):
        lock_path(out, "words-1").parent.mkdir()
        other.acquire()
        for name in ("features", "results", "words"):
            (out / name).mkdir()  # empty so far: the other process is about to write there
        raise RuntimeError("failed")
    try:
        assert removed == [] and all((out / name).is_dir() for name in ("features", "results", "words"))
    finally:
        other.release()


def test_a_link_named_like_a_lock_file_keeps_the_folder(tmp_path) -> None:
    kept = tmp_path / "notes.txt"
    kept.write_text("a user's file")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), output_dir(out):
        (out / ".locks").mkdir()
        (out / ".locks" / "x.lock").symlink_to(kept)
        raise RuntimeError("failed")
    assert (out / ".locks" / "x.lock").is_symlink() and kept.read_text() == "a user's file"
