"""Pins found by mutation testing (round 3) of vwbench.results: durability of atomic writes, the
errors of the all-or-nothing writer, what a result file and a words file must hold (each test
names the behaviour it holds in place)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from vwbench.errors import UserError
from vwbench.results.atomic import atomic_write_bytes, write_file_set


def test_an_atomic_write_syncs_the_file_then_its_folder_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b"old")
    real_fsync, synced = os.fsync, []

    def fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append(("folder" if is_dir else "file", path.read_bytes()))  # what the target holds at that moment
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_bytes(path, b"new")
    assert synced == [("file", b"old"), ("folder", b"new")]


def test_a_file_where_a_folder_of_the_set_goes_is_named_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "board").write_text("a file")
    files = {tmp_path / "ok" / "a.json": b"a", tmp_path / "board" / "sub" / "b.json": b"b"}
    with pytest.raises(UserError) as info:
        write_file_set(files, flag="--board")
    assert str(info.value) == (
        f"cannot write {tmp_path / 'board' / 'sub' / 'b.json'}: {tmp_path / 'board'} is a file, not a folder; "
        "move it away or choose another --board"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board"]  # not even the other file's folder


def test_a_folder_that_appears_while_the_set_is_written_is_named_and_nothing_is_replaced(tmp_path: Path, monkeypatch) -> None:
    from vwbench.results import atomic

    out = tmp_path / "board"
    old = {out / "a.json": b"old a", out / "b.html": b"old b"}
    write_file_set(old)
    real_point = atomic.faults.point

    def point(phase: str) -> None:
        if phase == "write:file-set:tmp" and not (out / "c.md").exists():
            (out / "c.md").mkdir()  # another process puts a folder where the set's new file goes
        real_point(phase)

    monkeypatch.setattr(atomic.faults, "point", point)
    with pytest.raises(UserError) as info:
        write_file_set({out / "a.json": b"new a", out / "b.html": b"new b", out / "c.md": b"new c"})
    assert str(info.value) == f"cannot write {out / 'c.md'}: it is a folder; move it away or choose another --out"
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.html", "c.md"]  # no temp file, backup or lock left
    assert (out / "a.json").read_bytes() == b"old a" and (out / "b.html").read_bytes() == b"old b"


def test_stale_temps_are_matched_by_the_literal_file_name(tmp_path: Path) -> None:
    from vwbench.results.atomic import remove_stale_temps

    path = tmp_path / "[a].json"
    stale = tmp_path / ".[a].json.k1ll3d.tmp"
    other = tmp_path / ".a.json.w0rk1ng.tmp"  # another file's temp, which the unescaped pattern [a] would match
    stale.write_bytes(b"left by a killed writer")
    other.write_bytes(b"a live writer's")
    assert remove_stale_temps(path) == 1
    assert not stale.exists() and other.exists()


def test_a_path_recorded_again_is_listed_once_as_the_newest_save(tmp_path: Path) -> None:
    from vwbench.results import journal

    journal.reset()
    try:
        journal.record(tmp_path / "w.trainstate", "training checkpoint (step 3 of 6)")
        journal.record(tmp_path / "r.json", "result")
        journal.record(tmp_path / "w.trainstate", "training checkpoint (step 5 of 6)")
        assert journal.saved() == [(str(tmp_path / "r.json"), "result"), (str(tmp_path / "w.trainstate"), "training checkpoint (step 5 of 6)")]
        assert journal.summary() == (
            f"saved result: {tmp_path / 'r.json'}; training checkpoint (step 5 of 6): {tmp_path / 'w.trainstate'}; "
            "run the same command again to resume from there"
        )
    finally:
        journal.reset()


def _payload(**over) -> dict:
    payload = dict(
        schema_version=1, task="clip->owlv2", source="clip", target="owlv2", dataset="synth-voc", metric="map", value=0.5, ci95=[0.4, 0.6],
        per_concept={"circle": 0.5}, per_word=[{"concept": "circle", "trial": 0, "init_word": "circle", "map": 0.5}],
        transfer="lstsq", n_trials=1, steps=10, seed=0,
        provenance=dict(vwbench_version="0.1.0", git_commit=None, task_version=1, checkpoints=[], dataset_manifest_hash="x",
                        versions={"torch": "2"}, device="cpu", dtype="float32", wall_time_s={"train": 1.0}, created="2026-01-01T00:00:00+00:00"),
    )
    payload.update(over)
    return payload


def test_schema_version_true_is_not_version_1(tmp_path: Path) -> None:
    from vwbench.results import read_result

    path = tmp_path / "r.json"
    path.write_text(json.dumps(_payload()))
    assert read_result(path).schema_version == 1
    path.write_text(json.dumps(_payload(schema_version=True)))
    with pytest.raises(UserError) as info:
        read_result(path)
    assert str(info.value) == f"{path}: result schema version True, this vwbench reads version 1"


def _words(n: int = 2):
    from vwbench.results.words_store import WordSet

    return WordSet(torch.arange(n * 3 * 4, dtype=torch.float32).reshape(n, 3, 4), ["circle", "square"][:n], list(range(n)), ["circle", "square"][:n], {"key": "k"})


def test_a_words_file_whose_lists_do_not_match_its_vectors_is_not_reused(tmp_path: Path) -> None:
    from vwbench.results.words_store import load_wordset, save_wordset

    words = _words()
    path = tmp_path / "w.safetensors"
    save_wordset(path, words)
    assert load_wordset(path).concepts == ["circle", "square"]
    for field in ("concepts", "trials", "init_words"):
        short = _words()
        setattr(short, field, getattr(short, field)[:1])  # one entry for two words (a checksum still matches: it is written so)
        save_wordset(path, short)
        assert load_wordset(path) is None, field


def test_a_words_file_whose_metadata_was_edited_is_not_reused(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    from vwbench.results.words_store import load_wordset, save_wordset

    path = tmp_path / "w.safetensors"
    save_wordset(path, _words())
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    edited = {**meta, "concepts": json.dumps(["square", "circle"])}  # same tensors, same stored checksum
    path.write_bytes(save(tensors, metadata=edited))
    assert load_wordset(path) is None
    path.write_bytes(save(tensors, metadata=meta))  # put back as written: read again
    assert load_wordset(path).concepts == ["circle", "square"]


def test_a_fifo_where_a_file_of_the_set_goes_is_refused_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "board"
    out.mkdir()
    os.mkfifo(out / "b.html")
    with pytest.raises(UserError) as info:
        write_file_set({out / "a.json": b"a", out / "b.html": b"b"})
    assert str(info.value) == f"cannot write {out / 'b.html'}: it is not a regular file; move it away or choose another --out"
    assert stat.S_ISFIFO((out / "b.html").lstat().st_mode) and sorted(p.name for p in out.iterdir()) == ["b.html"]


@pytest.mark.parametrize("failure", ["timeout", "oserror", "exit"])
def test_git_commit_survives_a_git_status_that_fails(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A slow checkout's `git status` (over 5 s) raised TimeoutExpired after the evaluation, losing
    the result: the commit is recorded, marked unchecked, instead."""
    import subprocess

    from vwbench.results import provenance

    real = subprocess.run
    repo = Path(provenance.__file__).resolve().parents[3]
    try:
        head = real(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() if (repo / ".git").exists() else ""
    except OSError:
        head = ""

    def run(cmd, **kwargs):
        if "status" in cmd:
            if failure == "timeout":
                raise subprocess.TimeoutExpired(cmd, 5)
            if failure == "oserror":
                raise OSError("no git")
            return subprocess.CompletedProcess(cmd, 128, "", "fatal")
        return real(cmd, **kwargs)

    monkeypatch.setattr(provenance.subprocess, "run", run)
    if not head:
        pytest.skip("vwbench does not run from a git checkout here")
    assert provenance.git_commit() == f"{head}-unchecked"
