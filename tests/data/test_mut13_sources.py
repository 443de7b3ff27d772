"""Mutation-testing round 13 pins of a prepared split's annotation-file check: which recorded facts
let a file pass without being read (size, mtime and a ctime no later than the hash, inclusive)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vwbench.data.real import _unchanged_without_reading

FACTS = {"sha256": "0" * 64, "size": 100, "mtime_ns": 5_000, "checked_ns": 9_000}


def _stat(size=100, mtime=5_000, ctime=9_000):
    return SimpleNamespace(st_size=size, st_mtime_ns=mtime, st_ctime_ns=ctime)


def test_a_file_as_recorded_is_taken_without_reading_up_to_the_ns_its_hash_was_taken() -> None:
    assert _unchanged_without_reading(_stat(), FACTS)  # its ctime is the check's ns: as of the hash
    assert _unchanged_without_reading(_stat(ctime=1_000), FACTS)


@pytest.mark.parametrize("stat", [_stat(size=101), _stat(size=99), _stat(mtime=5_001), _stat(mtime=4_999), _stat(ctime=9_001)], ids=["larger", "smaller", "newer mtime", "older mtime", "later ctime"])
def test_any_other_size_mtime_or_a_later_ctime_is_read(stat) -> None:
    assert not _unchanged_without_reading(stat, FACTS)


def test_a_record_without_its_check_time_is_read() -> None:
    assert not _unchanged_without_reading(_stat(), {k: v for k, v in FACTS.items() if k != "checked_ns"})


# ---- through a prepared split on disk ------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.data.test_prepared_annotations_checked import _coco, _load, _refusal, _voc  # noqa: E402
from vwbench.data.real import SPLIT_FILE, _refresh_sources, source_name  # noqa: E402


def test_a_file_of_another_size_is_refused_by_its_size_without_hashing(tmp_path, monkeypatch) -> None:
    import vwbench.data.real as real
    from vwbench.data.prepare import prepare_dataset

    spec, source = _coco(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    size = source.stat().st_size
    source.write_text(source.read_text() + " ")
    hashed: list[str] = []
    monkeypatch.setattr(real, "sha256_file", lambda path: hashed.append(Path(path).name) or "0" * 64)
    message = _refusal(lambda: _load(spec, tmp_path))
    assert f"changed since `vwbench data prepare` ({size + 1} bytes, {SPLIT_FILE} says {size})" in message
    assert source.name not in hashed


def test_a_recorded_file_replaced_by_a_folder_is_missing(tmp_path) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, source = _coco(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    source.unlink()
    source.mkdir()
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{source} is missing (the split in ")


def test_a_prepared_split_carries_the_recorded_files(tmp_path) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, _ = _coco(tmp_path)
    path, _ = prepare_dataset(spec, tmp_path, 2)
    recorded = json.loads(path.read_text())["sources"]
    assert _load(spec, tmp_path).sources == recorded


def test_a_record_of_a_split_file_without_check_times_is_hashed_not_trusted(tmp_path) -> None:
    """A split file of the previous release (sha256, size, mtime_ns only): an edit of the same size
    under the old mtime (`cp -p`) is found by hashing."""
    from vwbench.data.prepare import prepare_dataset

    spec, source = _coco(tmp_path)
    path, _ = prepare_dataset(spec, tmp_path, 2)
    data = json.loads(path.read_text())
    for facts in data["sources"].values():
        del facts["checked_ns"]
    path.write_text(json.dumps(data))
    before = source.stat()
    text = source.read_text()
    source.write_text(text.replace('"bbox": [4.0, 3.0, 18.0, 12.0]', '"bbox": [4.0, 3.0, 18.0, 11.0]', 1))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "changed since `vwbench data prepare` (sha256 " in _refusal(lambda: _load(spec, tmp_path))


def test_a_file_outside_the_dataset_folder_is_named_by_its_absolute_path(tmp_path) -> None:
    folder = tmp_path / "dreambooth"
    assert source_name(folder, folder / "sub" / "boxes.json") == "sub/boxes.json"
    assert source_name(folder, tmp_path / "elsewhere" / "boxes.json") == (tmp_path / "elsewhere" / "boxes.json").as_posix()


def test_refreshing_a_split_file_that_changed_meanwhile_is_best_effort(tmp_path) -> None:
    split_file = tmp_path / SPLIT_FILE
    split_file.write_text(json.dumps({"sources": {}}))  # the file it names is no longer recorded
    _refresh_sources(split_file, {"gone.json": {"mtime_ns": 1, "checked_ns": 2}})
    split_file.write_text(json.dumps({"sources": []}))
    _refresh_sources(split_file, {"gone.json": {"mtime_ns": 1, "checked_ns": 2}})
    assert json.loads(split_file.read_text()) == {"sources": []}


@pytest.mark.parametrize("edited", ["ImageSets/Main/train.txt", "ImageSets/Main/val.txt", "Annotations/2012_val_0000.xml"])
def test_voc_lists_and_validation_files_are_checked_too(tmp_path, edited) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, source = _voc(tmp_path)
    devkit = source.parents[1]
    prepare_dataset(spec, tmp_path, 2)
    path = devkit / edited
    assert path.is_file(), sorted(p.relative_to(devkit).as_posix() for p in devkit.rglob("*") if p.is_file())
    path.write_text(path.read_text() + "\n")
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{path} changed since `vwbench data prepare`")


def test_voc_names_an_image_in_both_lists_once(tmp_path) -> None:
    from vwbench.data.voc import voc_sources

    spec, source = _voc(tmp_path)
    devkit = source.parents[1]
    listing = devkit / "ImageSets" / "Main" / "val.txt"
    listing.write_text(listing.read_text() + "\n" + (devkit / "ImageSets" / "Main" / "train.txt").read_text().split()[0] + "\n")
    paths = voc_sources(spec, tmp_path / "voc")
    assert len(paths) == len(set(paths))
