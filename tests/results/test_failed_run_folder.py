"""A failed run removes the --out folder it made when nothing was written in it: the lock files
its work took (and let go) do not count, a lock another process holds keeps the folder."""

from __future__ import annotations

import pytest
from filelock import FileLock

from vwbench.results.atomic import output_dir
from vwbench.results.locks import exclusive, lock_path


def test_the_failed_works_own_lock_files_do_not_keep_the_folder(tmp_path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), output_dir(out):
        with exclusive(out, "result-abc", what="a result"):
            pass
        assert lock_path(out, "result-abc").is_file()  # fcntl lock files stay after release
        raise RuntimeError("the target model failed to load")
    assert not (tmp_path / "new").exists()


def test_a_lock_another_process_holds_keeps_the_folder(tmp_path) -> None:
    out = tmp_path / "out"
    other = FileLock(str(lock_path(out, "words-1")), thread_local=False)  # another fd: flock conflicts like another process's
    with pytest.raises(RuntimeError), output_dir(out):
        lock_path(out, "words-1").parent.mkdir()
        other.acquire()
        raise RuntimeError("failed")
    try:
        assert lock_path(out, "words-1").is_file()
    finally:
        other.release()


def test_a_written_file_keeps_the_folder_and_its_locks(tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), output_dir(out):
        with exclusive(out, "result-abc", what="a result"):
            (out / "result.json").write_text("{}")
        raise RuntimeError("failed after writing")
    assert (out / "result.json").is_file() and lock_path(out, "result-abc").is_file()


def test_a_link_named_like_a_lock_file_keeps_the_folder(tmp_path) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "kept.txt"
    elsewhere.write_text("x")
    with pytest.raises(RuntimeError), output_dir(out):
        (out / ".locks").mkdir()
        (out / ".locks" / "a.lock").symlink_to(elsewhere)
        raise RuntimeError("failed")
    assert (out / ".locks" / "a.lock").is_symlink() and elsewhere.read_text() == "x"
