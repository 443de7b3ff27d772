"""`write_file_set` under concurrency and failures in its rename phase: two writers of one folder
take turns (each set whole), a failed rename puts back the old set, and a writer killed between
two renames leaves leftovers that the next write of the set removes."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vwbench import faults
from vwbench.errors import UserError
from vwbench.results.atomic import SET_LOCK, write_file_set

NAMES = ("leaderboard.json", "README.md", "index.html")
ROOT = Path(__file__).resolve().parents[2]


def _set(folder: Path, tag: str) -> dict[Path, bytes]:
    return {folder / name: f"{tag} {name}".encode() for name in NAMES}


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _as_contents(files: dict[Path, bytes]) -> dict[str, bytes]:
    return {p.name: data for p, data in sorted(files.items())}


def test_two_writers_of_one_folder_take_turns(tmp_path, monkeypatch, capsys) -> None:
    """Writer A stops after its first rename and starts writer B there; B must wait for A's lock
    (it reaches the ``lock:wait`` fault point) and then write its whole set after A's. Without
    the lock B writes at once, and A's last renames leave a mixed set."""
    out = tmp_path / "board"
    set_a, set_b = _set(out, "A"), _set(out, "B")
    b_waits_or_ended = threading.Event()
    errors: list[BaseException] = []
    renames = {"A": 0}
    real_point, real_replace = faults.point, os.replace

    def writer(files: dict[Path, bytes]) -> None:
        try:
            write_file_set(files)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            if files is set_b:
                b_waits_or_ended.set()

    b = threading.Thread(target=writer, args=(set_b,), name="B")

    def point(phase: str) -> None:
        if threading.current_thread() is b and phase == "lock:wait":
            b_waits_or_ended.set()
        real_point(phase)

    def replace(src, dst) -> None:
        if threading.current_thread().name == "A":
            renames["A"] += 1
            if renames["A"] == 2:  # A's first file is renamed, the other two are not
                b.start()
                assert b_waits_or_ended.wait(timeout=120), "writer B neither waited nor finished"
        real_replace(src, dst)

    monkeypatch.setattr(faults, "point", point)
    monkeypatch.setattr(os, "replace", replace)
    a = threading.Thread(target=writer, args=(set_a,), name="A")
    a.start()
    a.join()
    b.join()
    assert errors == []
    assert renames["A"] == len(NAMES)
    assert _contents(out) == _as_contents(set_b)  # B's whole set, and nothing else (no lock file)
    assert f"waiting for another vwbench process working on the files in {out}" in capsys.readouterr().err  # B said why it waited


def test_a_lock_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path) -> None:
    out = tmp_path / "board"
    out.mkdir()
    (out / SET_LOCK).write_text("")  # the kernel dropped the lock of the killed process; its file stays
    files = _set(out, "new")
    write_file_set(files)
    assert _contents(out) == _as_contents(files)


def test_a_lock_won_on_a_file_that_was_replaced_is_taken_again(tmp_path, monkeypatch) -> None:
    """A process that wins the lock on a lock file its holder deleted meanwhile must not go in:
    here the path names another file at the first look, and `transient` lets go and locks again
    (keeping the first lock would block the second try forever)."""
    from vwbench.results import locks

    path = tmp_path / SET_LOCK
    real_stat, looks = os.stat, []

    def stat(target, *args, **kwargs):
        if Path(target) == path:
            looks.append(target)
            if len(looks) == 1:
                return real_stat(tmp_path)  # another file than the one just locked
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with locks.transient(path, what="the test"):
        assert len(looks) == 2
    monkeypatch.undo()
    assert not path.exists()


def _fail_nth_replace(monkeypatch, n: int) -> None:
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == n:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_a_failed_rename_puts_back_the_files_already_renamed(tmp_path, monkeypatch) -> None:
    """The third rename fails: the first file (which had an old version) gets its old version
    back, the second (new in this set) is removed again; no temp, backup or lock file is left."""
    out = tmp_path / "board"
    out.mkdir()
    (out / "leaderboard.json").write_bytes(b"old json")
    (out / "index.html").write_bytes(b"old html")
    (out / "other.txt").write_bytes(b"not in the set")
    old = _contents(out)
    files = {out / "leaderboard.json": b"new json", out / "README.md": b"new md", out / "index.html": b"new html"}
    _fail_nth_replace(monkeypatch, 3)
    with pytest.raises(UserError, match=r"cannot write .*index\.html: Input/output error; check the disk"):
        write_file_set(files)
    monkeypatch.undo()
    assert _contents(out) == old
    write_file_set(files)
    assert _contents(out) == {**_as_contents(files), "other.txt": b"not in the set"}


def test_an_interrupt_between_two_renames_puts_back_the_old_set(tmp_path, monkeypatch) -> None:
    out = tmp_path / "board"
    old = _set(out, "old")
    write_file_set(old)
    monkeypatch.setenv(faults.ENV, "write:file-set:rename@2=interrupt")
    monkeypatch.setattr(faults, "_counts", type(faults._counts)())
    # the fault sends SIGINT to this process: a shell's background job inherits it ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_file_set(_set(out, "new"))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _contents(out) == _as_contents(old)


def test_a_writer_killed_between_two_renames_is_repaired_by_the_next_write(tmp_path) -> None:
    """What a crash in the rename window can leave (documented in vwbench.results.atomic): a
    mixed set with hidden leftovers. The next write of the set leaves one whole set and nothing else."""
    out = tmp_path / "board"
    old = _set(out, "old")
    write_file_set(old)
    script = (
        "import sys; from pathlib import Path; from vwbench.results.atomic import write_file_set; "
        "out = Path(sys.argv[1]); write_file_set({out / n: f'killed {n}'.encode() for n in sys.argv[2:]})"
    )
    env = {**os.environ, faults.ENV: "write:file-set:rename@2=kill", "PYTHONPATH": str(ROOT / "benchmark")}
    killed = subprocess.run([sys.executable, "-c", script, str(out), *NAMES], env=env, cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    left = _contents(out)
    assert left[NAMES[0]] == f"killed {NAMES[0]}".encode() and left[NAMES[1]] == f"old {NAMES[1]}".encode()
    assert any(name.startswith(".") for name in left)  # hidden temps and backups (and the lock file)
    new = _set(out, "new")
    write_file_set(new)
    assert _contents(out) == _as_contents(new)
