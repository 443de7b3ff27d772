"""A prepared split records a folder of many annotation files (ImageNet's and VOC's XML files, one
per image) as one entry: the files' names with the first 12 hex digits of each one's sha256, a
digest of their names, sizes and mtimes, one of their full hashes, and when the hashing began.
Before, each of ImageNet's ~55,000 XML files had its own entry: an ~11 MB split file, and ~1.5 s
spent checking it on every load. A file added to, removed from or changed in such a folder is
still refused in one line naming it, under the same ctime rule as a file recorded on its own."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import vwbench.data.real as real
from tests.data import fixtures_real as fx
from tests.data.test_prepared_annotations_checked import _load, _refusal
from vwbench.data.prepare import prepare_dataset
from vwbench.data.real import FOLDER_MIN, SPLIT_FILE

WNIDS = ["n00000001", "n00000002"]


def _imagenet(tmp_path: Path):
    """ImageNet's layout with FOLDER_MIN XML files in each concept's train folder and in val."""
    spec = fx.shipped_spec_with("imagenet", ["circle", "square"], options={"subdir": "imagenet", "synsets": {"circle": WNIDS[0], "square": WNIDS[1]}})
    base = fx.write_imagenet(tmp_path / "imagenet", WNIDS, train_n=FOLDER_MIN, val_n=FOLDER_MIN // 2)
    return spec, base / "Annotations" / "CLS-LOC"


def _voc(tmp_path: Path):
    spec = fx.shipped_spec_with("voc", ["circle", "square"])
    devkit = fx.write_voc(tmp_path / "voc", ["circle", "square"], train_n=FOLDER_MIN // 2, val_n=FOLDER_MIN // 2)
    return spec, devkit / "Annotations"


def _split(tmp_path: Path, dataset: str) -> dict:
    return json.loads((tmp_path / dataset / SPLIT_FILE).read_text())


def _same_size_edit(path: Path) -> None:
    text = path.read_text()
    edited = text.replace("<xmax>22</xmax>", "<xmax>21</xmax>", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)


def _hashed_xml(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real_sha = real.sha256_file
    monkeypatch.setattr(real, "sha256_file", lambda path: hashed.append(Path(path).name) or real_sha(path))
    return hashed


def test_a_folder_of_many_annotation_files_is_one_entry(tmp_path) -> None:
    from vwbench.hashing import sha256_file

    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    sources = _split(tmp_path, "imagenet")["sources"]
    assert sorted(sources) == ["ILSVRC/Annotations/CLS-LOC/train/n00000001", "ILSVRC/Annotations/CLS-LOC/train/n00000002", "ILSVRC/Annotations/CLS-LOC/val"]
    val = sources["ILSVRC/Annotations/CLS-LOC/val"]
    assert sorted(val) == ["checked_ns", "files", "listing_sha256", "sha256"]
    assert val["files"] == {p.name: sha256_file(p)[:12] for p in sorted((ann / "val").glob("*.xml"))}
    assert val["checked_ns"] >= max(p.stat().st_ctime_ns for p in (ann / "val").glob("*.xml"))
    assert _split(tmp_path, "imagenet")["format"] == 2


def test_few_files_of_a_folder_are_still_recorded_one_by_one(tmp_path) -> None:
    """VOC's two lists share a folder, and its XML files are one folder entry."""
    spec, ann = _voc(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    sources = _split(tmp_path, "voc")["sources"]
    assert sorted(sources) == ["VOCdevkit/VOC2012/Annotations", "VOCdevkit/VOC2012/ImageSets/Main/train.txt", "VOCdevkit/VOC2012/ImageSets/Main/val.txt"]
    assert len(sources["VOCdevkit/VOC2012/Annotations"]["files"]) == 2 * FOLDER_MIN


def test_a_file_added_to_a_recorded_folder_is_refused_naming_it(tmp_path) -> None:
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    added = ann / "train" / WNIDS[1] / f"{WNIDS[1]}_999.xml"
    shutil.copy(ann / "train" / WNIDS[1] / f"{WNIDS[1]}_0.xml", added)
    assert _refusal(lambda: _load(spec, tmp_path)) == (
        f"{added} is new since `vwbench data prepare` (the split in {tmp_path / 'imagenet' / SPLIT_FILE} was selected without it); run `vwbench data prepare` again")


@pytest.mark.parametrize("layout", ["imagenet", "voc"])
def test_a_file_removed_from_a_recorded_folder_is_refused_naming_it(tmp_path, layout) -> None:
    spec, ann = (_imagenet if layout == "imagenet" else _voc)(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    removed = sorted(ann.rglob("*.xml"))[3]
    removed.unlink()
    assert _refusal(lambda: _load(spec, tmp_path)) == (
        f"{removed} is missing (the split in {tmp_path / layout / SPLIT_FILE} was selected from it); restore it or run `vwbench data prepare` again")


@pytest.mark.parametrize("layout", ["imagenet", "voc"])
@pytest.mark.parametrize("edit", ["same size", "longer"])
def test_a_file_changed_in_a_recorded_folder_is_refused_naming_it(tmp_path, layout, edit) -> None:
    spec, ann = (_imagenet if layout == "imagenet" else _voc)(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    changed = sorted(ann.rglob("*.xml"))[-1]
    if edit == "same size":
        _same_size_edit(changed)
    else:
        changed.write_text(changed.read_text() + "\n")
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message.startswith(f"{changed} changed since `vwbench data prepare` (sha256 ")
    assert message.endswith(f"the split in {tmp_path / layout / SPLIT_FILE} was selected from the old file: run `vwbench data prepare` again (or restore the file)")


def test_a_touch_without_a_change_is_accepted_and_its_folder_hashed_once(tmp_path, monkeypatch) -> None:
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    hashed = _hashed_xml(monkeypatch)
    _load(spec, tmp_path)
    assert not [n for n in hashed if n.endswith(".xml")]  # names, sizes, mtimes and ctimes as recorded
    before = _split(tmp_path, "imagenet")["sources"]["ILSVRC/Annotations/CLS-LOC/val"]
    touched = sorted((ann / "val").glob("*.xml"))[5]
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    hashed.clear()
    _load(spec, tmp_path)
    assert sorted(n for n in hashed if n.endswith(".xml")) == sorted(p.name for p in (ann / "val").glob("*.xml"))
    after = _split(tmp_path, "imagenet")["sources"]["ILSVRC/Annotations/CLS-LOC/val"]
    assert after["listing_sha256"] != before["listing_sha256"] and after["checked_ns"] > before["checked_ns"]
    assert {k: after[k] for k in ("files", "sha256")} == {k: before[k] for k in ("files", "sha256")}
    hashed.clear()
    _load(spec, tmp_path)  # the match was recorded: not hashed again
    assert not [n for n in hashed if n.endswith(".xml")]


def _checked_at(tmp_path: Path, name: str, checked_ns: int) -> None:
    path = tmp_path / "imagenet" / SPLIT_FILE
    data = json.loads(path.read_text())
    data["sources"][name]["checked_ns"] = checked_ns
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("later", [0, 1], ids=["ctime at the check", "ctime 1 ns after the check"])
def test_a_change_under_the_recorded_mtime_is_caught_when_a_ctime_is_after_the_check(tmp_path, monkeypatch, later) -> None:
    """Other bytes of the same size under the restored mtime (what `cp -p` of an edited copy
    leaves): as for a file recorded on its own (_unchanged_without_reading), the folder is read
    again exactly when a file's ctime is after the recorded check time."""
    spec, ann = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    changed = sorted((ann / "val").glob("*.xml"))[2]
    before = changed.stat()
    _same_size_edit(changed)
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert changed.stat().st_ctime_ns > _split(tmp_path, "imagenet")["sources"]["ILSVRC/Annotations/CLS-LOC/val"]["checked_ns"]
    assert "changed since `vwbench data prepare` (sha256 " in _refusal(lambda: _load(spec, tmp_path))  # as recorded: caught
    latest = max(p.stat().st_ctime_ns for p in (ann / "val").glob("*.xml"))
    _checked_at(tmp_path, "ILSVRC/Annotations/CLS-LOC/val", latest - later)
    hashed = _hashed_xml(monkeypatch)
    if later:
        assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{changed} changed since `vwbench data prepare` (sha256 ")
    else:  # what the per-file rule does too: a ctime not after the check is trusted
        _load(spec, tmp_path)
        assert not [n for n in hashed if n.endswith(".xml")]


def test_a_split_file_of_the_previous_format_is_still_read_and_checked(tmp_path, monkeypatch) -> None:
    """Format 1 recorded every annotation file on its own; such a split file is used as it is."""
    spec, ann = _imagenet(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(real, "FOLDER_MIN", 10**9)
        patch.setattr(real, "SPLIT_FORMAT", 1)
        prepare_dataset(spec, tmp_path, 2)
    data = _split(tmp_path, "imagenet")
    assert data["format"] == 1 and len(data["sources"]) == 3 * FOLDER_MIN and all("size" in f for f in data["sources"].values())
    _load(spec, tmp_path)
    changed = sorted((ann / "val").glob("*.xml"))[0]
    _same_size_edit(changed)
    assert _refusal(lambda: _load(spec, tmp_path)).startswith(f"{changed} changed since `vwbench data prepare` (sha256 ")
    prepare_dataset(spec, tmp_path, 2)  # what the message says to do: the folders are now one entry each
    assert _split(tmp_path, "imagenet")["format"] == 2 and len(_split(tmp_path, "imagenet")["sources"]) == 3
    _load(spec, tmp_path)
