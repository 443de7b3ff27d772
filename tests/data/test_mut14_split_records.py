"""Mutation round 14: what a prepared split's folder entries (``FOLDER_MIN`` or more annotation
files of one folder recorded as one entry) must still guarantee, beyond
test_split_folder_records.py:

* the check time is taken before any file is hashed, at prepare and when a check hashes a folder
  again, so an edit made while the hashing runs (even one that restores the mtime) is caught by
  the next run;
* the names, sizes and mtimes are compared on their own, not only the ctimes (a filesystem
  whose clock is behind ours gives an edit a ctime before the recorded check time);
* a recorded file replaced by a folder is refused as missing (one line, not an OSError);
* the digest of the full hashes is checked where every 12-digit tag matches;
* a folder entry for the dataset folder itself (source name ".") names its files without "./";
* only distinct existing regular files count, and a folder of none of them is left to the scanner.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

import vwbench.data.real as real
from tests.data.test_prepared_annotations_checked import _load, _refusal
from tests.data.test_split_folder_records import _imagenet, _same_size_edit, _split
from vwbench.data.prepare import prepare_dataset
from vwbench.data.real import FOLDER_MIN, SPLIT_FILE, check_sources, fingerprint_sources
from vwbench.errors import DataError

VAL = "ILSVRC/Annotations/CLS-LOC/val"
COARSE_CLOCK_S = 0.05  # more than a kernel tick: a ctime taken this long after a time.time_ns() is later than it


def _edit_keeping_mtime(path: Path, edit) -> None:
    before = path.stat()
    edit(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _edit_right_after_hashing(monkeypatch, target: Path) -> list[str]:
    """Make ``real.sha256_file`` edit ``target`` (same size, mtime restored) right after it hashed
    it, once: an edit made while a folder's files are being hashed."""
    real_sha = real.sha256_file
    done: list[str] = []

    def hashing(path):
        digest = real_sha(path)
        if Path(path) == target and not done:
            time.sleep(COARSE_CLOCK_S)
            _edit_keeping_mtime(target, _same_size_edit)
            done.append(digest)
        return digest

    monkeypatch.setattr(real, "sha256_file", hashing)
    return done


def _set_source(tmp_path: Path, name: str, **facts) -> None:
    path = tmp_path / "imagenet" / SPLIT_FILE
    data = json.loads(path.read_text())
    data["sources"][name].update(facts)
    path.write_text(json.dumps(data))


# ---- the check time is taken before the hashing -----------------------------------------------------


def test_a_file_edited_while_prepare_hashes_its_folder_is_refused_by_the_next_run(tmp_path, monkeypatch) -> None:
    """The split is selected (after the hashing) from other bytes than the recorded ones: the
    edit's ctime is after the recorded check time, so the run hashes the folder and refuses."""
    spec, ann = _imagenet(tmp_path)
    target = sorted((ann / "val").glob("*.xml"))[0]
    with monkeypatch.context() as patch:
        edited = _edit_right_after_hashing(patch, target)
        prepare_dataset(spec, tmp_path, 2)
    assert edited, "the edit hook never ran"
    assert target.stat().st_ctime_ns > _split(tmp_path, "imagenet")["sources"][VAL]["checked_ns"]
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{target} changed since `vwbench data prepare` (sha256 ")


def test_a_file_edited_while_a_run_hashes_its_folder_again_is_refused_by_the_next_run(tmp_path, monkeypatch) -> None:
    """A touch makes a run hash the folder again; a file edited after its hash matched (its mtime
    set back to what that run saw) must not be trusted by the refreshed record."""
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    files = sorted((ann / "val").glob("*.xml"))
    touched, target = files[5], files[0]
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with monkeypatch.context() as patch:
        edited = _edit_right_after_hashing(patch, target)
        _load(spec, tmp_path)  # every file matched when it was hashed: accepted, and recorded
    assert edited, "the folder was not hashed again"
    recorded = _split(tmp_path, "imagenet")["sources"][VAL]
    assert target.stat().st_ctime_ns > recorded["checked_ns"]
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{target} changed since `vwbench data prepare` (sha256 ")


# ---- names, sizes and mtimes are compared even where the ctimes say nothing ---------------------------


@pytest.mark.parametrize("edit", ["longer, mtime set back", "same size, new mtime"])
def test_a_size_or_mtime_change_is_caught_even_with_a_ctime_before_the_check(tmp_path, edit) -> None:
    """As if the filesystem's clock were behind ours: every ctime is before the recorded check time."""
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    _set_source(tmp_path, VAL, checked_ns=time.time_ns() + 86_400 * 10**9)
    _load(spec, tmp_path)  # unchanged: accepted without reading
    changed = sorted((ann / "val").glob("*.xml"))[3]
    if edit == "longer, mtime set back":
        _edit_keeping_mtime(changed, lambda p: p.write_text(p.read_text() + "\n"))
    else:
        stat = changed.stat()
        _same_size_edit(changed)
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    assert changed.stat().st_ctime_ns < json.loads((tmp_path / "imagenet" / SPLIT_FILE).read_text())["sources"][VAL]["checked_ns"]
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{changed} changed since `vwbench data prepare` (sha256 ")


# ---- a file replaced by a folder, and the full-hash digest ---------------------------------------------


def test_a_recorded_file_replaced_by_a_folder_is_refused_as_missing(tmp_path) -> None:
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    replaced = sorted((ann / "val").glob("*.xml"))[4]
    replaced.unlink()
    replaced.mkdir()
    assert _refusal(lambda: _load(spec, tmp_path)) == (
        f"{replaced} is missing (the split in {tmp_path / 'imagenet' / SPLIT_FILE} was selected from it); restore it or run `vwbench data prepare` again")


def test_the_full_hash_digest_is_checked_where_every_tag_matches(tmp_path) -> None:
    """What a file whose sha256 shares its first 12 hex digits with the recorded one leaves: every
    tag matches but the digest of the full hashes does not (simulated by the recorded digest)."""
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    _set_source(tmp_path, VAL, sha256="0" * 64, checked_ns=0)  # checked_ns 0: every ctime is after it, so it is hashed
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message.startswith(f"{ann / 'val'}: a file of the {FOLDER_MIN} recorded there changed since `vwbench data prepare`"), message


# ---- fingerprint_sources and check_sources on their own ------------------------------------------------


def _files(folder: Path, n: int, suffix: str = ".xml") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}{suffix}"
        path.write_text(f"<annotation>{i}</annotation>\n")
        paths.append(path)
    return paths


def test_a_folder_entry_for_the_dataset_folder_itself_names_its_files_without_a_dot(tmp_path) -> None:
    folder = tmp_path / "ds"
    paths = _files(folder, FOLDER_MIN)
    listed = list(paths)
    recorded = fingerprint_sources(folder, listed)
    assert list(recorded) == ["."] and len(recorded["."]["files"]) == FOLDER_MIN
    lister = lambda spec, f: listed  # noqa: E731
    check_sources(None, folder, recorded, lister)  # nothing changed: accepted
    added = folder / "999.xml"
    added.write_text("<annotation/>\n")
    listed.append(added)
    with pytest.raises(DataError, match=f"^{added} is new since"):
        check_sources(None, folder, recorded, lister)
    listed.pop()
    paths[2].unlink()
    with pytest.raises(DataError, match=f"^{paths[2]} is missing"):
        check_sources(None, folder, recorded, lister)


def test_a_folder_is_one_entry_only_for_distinct_files(tmp_path) -> None:
    """FOLDER_MIN - 1 files each listed twice are still recorded one by one."""
    folder = tmp_path / "ds"
    paths = _files(folder / "Annotations", FOLDER_MIN - 1)
    recorded = fingerprint_sources(folder, paths + paths)
    assert sorted(recorded) == [f"Annotations/{p.name}" for p in paths]
    assert all("size" in facts for facts in recorded.values())


def test_a_folder_of_no_existing_file_is_left_to_the_scanner(tmp_path) -> None:
    folder = tmp_path / "ds"
    (folder / "Annotations").mkdir(parents=True)
    missing = [folder / "Annotations" / f"{i:03d}.xml" for i in range(FOLDER_MIN)]
    kept = _files(folder / "ImageSets", 1, ".txt")
    assert sorted(fingerprint_sources(folder, missing + kept)) == ["ImageSets/000.txt"]


def test_a_fifo_among_a_folder_s_files_is_not_read(tmp_path) -> None:
    """Only regular files are hashed: opening a FIFO would wait for a writer (for ever). A helper
    thread plays that writer for up to 3 s, so a broken check fails here instead of hanging."""
    folder = tmp_path / "ds"
    paths = _files(folder / "Annotations", FOLDER_MIN)
    fifo = folder / "Annotations" / "zzz.xml"
    os.mkfifo(fifo)
    stop = threading.Event()
    released: list[bool] = []

    def writer() -> None:
        deadline = time.monotonic() + 3
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader has it open
            except OSError:
                time.sleep(0.01)
                continue
            os.close(fd)  # the reader sees end of file
            released.append(True)
            return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        recorded = fingerprint_sources(folder, paths + [fifo])
    finally:
        stop.set()
        thread.join()
    assert not released, "the FIFO was opened for reading"
    assert sorted(recorded["Annotations"]["files"]) == [p.name for p in paths]
