"""A prepared split (``vwbench data prepare``'s ``vwbench_split.json``) records the annotation files
it was selected from, and a run refuses one that changed, went missing or was added since, in one
line naming the file and saying to prepare again. Before, edited boxes were silently ignored: the
old boxes came from the split file (a review's DreamBooth reproduction: every box halved in
boxes.json, and a run, even into a fresh --out, still scored 0.594 instead of 0.010)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.data import fixtures_real as fx
from vwbench.data.dreambooth import load_dreambooth_dataset
from vwbench.data.real import SPLIT_FILE
from vwbench.errors import DataError
from vwbench.registry import TaskRegistry


def _prepare_cli(monkeypatch, capsys, root: Path, dataset: str, n: int) -> None:
    from tests.test_cli_pins import _main

    code, out, err = _main(monkeypatch, capsys, "data", "prepare", "--dataset", dataset, "--root", root, "--images-per-concept", n)
    assert code == 0, err


def _refusal(load) -> str:
    with pytest.raises(DataError) as info:
        load()
    message = str(info.value)
    assert "\n" not in message
    return message


def _dreambooth(tmp_path: Path):
    spec = TaskRegistry.from_dir().dataset("dreambooth")  # as `data prepare --dataset dreambooth` reads it
    folder = tmp_path / "dreambooth"
    fx.write_dreambooth_photos(folder, [c.name for c in spec.concepts], n=4)
    fx.write_dreambooth_boxes(folder, [c.name for c in spec.concepts])
    return spec, folder


def _boxes(split) -> list:
    return [a.bbox for e in split.train + split.heldout for a in e.annotations]


def test_halved_dreambooth_boxes_are_refused_until_the_dataset_is_prepared_again(tmp_path, monkeypatch, capsys) -> None:
    spec, folder = _dreambooth(tmp_path)
    _prepare_cli(monkeypatch, capsys, tmp_path, "dreambooth", 8)
    before = load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    boxes = folder / "boxes.json"
    data = json.loads(boxes.read_text())
    for ann in data["annotations"]:
        ann["bbox"] = [v / 2 for v in ann["bbox"]]
    boxes.write_text(json.dumps(data))

    message = _refusal(lambda: load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path))
    assert message.startswith(f"{boxes} changed since `vwbench data prepare` (")
    assert f"the split in {folder / SPLIT_FILE} was selected from the old file: run `vwbench data prepare` again" in message

    _prepare_cli(monkeypatch, capsys, tmp_path, "dreambooth", 8)  # what the message says to do
    after = load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    assert _boxes(after) == [tuple(v / 2 for v in b) for b in _boxes(before)]
    assert after.manifest.hash != before.manifest.hash  # results of the old boxes are not reused


def test_the_run_command_refuses_the_edited_boxes_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    """What `vwbench run` loads the dataset with (the registry's loader) stops at the data stage,
    exit code 2, before any result could be reused."""
    from vwbench.registry import dataset_loader

    spec, folder = _dreambooth(tmp_path)
    _prepare_cli(monkeypatch, capsys, tmp_path, "dreambooth", 8)
    boxes = folder / "boxes.json"
    boxes.write_text(boxes.read_text().replace('"bbox": [4, 3, 18, 12]', '"bbox": [4, 3, 9, 6]', 1))
    loader = dataset_loader(spec.loader)
    message = _refusal(lambda: loader(spec, images_per_concept=8, data_root=tmp_path))
    assert str(boxes) in message and "run `vwbench data prepare` again" in message


# ---- every format: changed, missing, added ------------------------------------------------------


def _coco(tmp_path):
    spec = fx.shipped_spec_with("coco", ["circle", "square"])
    folder = fx.write_coco(tmp_path / "coco", ["circle", "square"], train_n=2, val_n=1)
    return spec, folder / "annotations" / "instances_train2017.json"


def _voc(tmp_path):
    spec = fx.shipped_spec_with("voc", ["circle", "square"])
    devkit = fx.write_voc(tmp_path / "voc", ["circle", "square"], train_n=2, val_n=1)
    return spec, devkit / "Annotations" / "2012_train_0000.xml"


def _imagenet(tmp_path):
    spec = fx.shipped_spec_with("imagenet", ["circle", "square"], options={"subdir": "imagenet", "synsets": {"circle": "n00000001", "square": "n00000002"}})
    base = fx.write_imagenet(tmp_path / "imagenet", ["n00000001", "n00000002"], train_n=2, val_n=1)
    return spec, base / "Annotations" / "CLS-LOC" / "train" / "n00000001" / "n00000001_0.xml"


def _shrunk(path: Path) -> None:
    """The largest box made smaller, in the file's own format."""
    text = path.read_text()
    edited = text.replace("<xmax>22</xmax>", "<xmax>12</xmax>", 1) if path.suffix == ".xml" else text.replace("[4.0, 3.0, 18.0, 12.0]", "[4.0, 3.0, 9.0, 6.0]", 1)
    assert edited != text
    path.write_text(edited)


LAYOUTS = {"coco": _coco, "voc": _voc, "imagenet": _imagenet}


def _load(spec, root):
    from vwbench.registry import dataset_loader

    return dataset_loader(spec.loader)(spec, images_per_concept=2, data_root=root)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_an_edited_annotation_file_is_refused(tmp_path, layout) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, source = LAYOUTS[layout](tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    _load(spec, tmp_path)  # unchanged: fine
    _shrunk(source)
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message.startswith(f"{source} changed since `vwbench data prepare`") and message.endswith("run `vwbench data prepare` again (or restore the file)")
    prepare_dataset(spec, tmp_path, 2)
    _load(spec, tmp_path)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_missing_annotation_file_is_refused(tmp_path, layout) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, source = LAYOUTS[layout](tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    source.rename(tmp_path / "moved")
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message.startswith(f"{source} is missing (the split in ") and message.endswith("restore it or run `vwbench data prepare` again")


def test_an_added_annotation_file_is_refused(tmp_path) -> None:
    """A new ImageNet validation file would be read by a fresh selection: the split was made without it."""
    from vwbench.data.prepare import prepare_dataset

    spec, source = _imagenet(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    val = source.parents[2] / "val"
    added = val / "ILSVRC2012_val_00000099.xml"
    shutil.copy(next(val.glob("*.xml")), added)
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message == (f"{added} is new since `vwbench data prepare` (the split in {tmp_path / 'imagenet' / SPLIT_FILE} was selected without it); "
                       "run `vwbench data prepare` again")


def test_a_newer_coco_release_beside_the_prepared_one_is_refused(tmp_path) -> None:
    """Prepared from 2014 (no year set); 2017 files added later are what a fresh selection reads."""
    from vwbench.data.prepare import prepare_dataset

    spec = fx.shipped_spec_with("coco", ["circle", "square"])
    folder = fx.write_coco(tmp_path / "coco", ["circle", "square"], train_n=2, val_n=1, year="2014")
    prepare_dataset(spec, tmp_path, 2)
    shutil.copy(folder / "annotations" / "instances_train2014.json", folder / "annotations" / "instances_train2017.json")
    assert "instances_train2017.json is new since `vwbench data prepare`" in _refusal(lambda: _load(spec, tmp_path))


# ---- cheap on large files: size and mtime first ----------------------------------------------------


def test_an_unchanged_file_is_not_hashed_and_a_touched_one_is_hashed_once(tmp_path, monkeypatch) -> None:
    import vwbench.data.real as real
    from vwbench.data.prepare import prepare_dataset

    spec, source = _coco(tmp_path)
    prepare_dataset(spec, tmp_path, 2)
    hashed: list[str] = []
    real_sha = real.sha256_file
    monkeypatch.setattr(real, "sha256_file", lambda path: hashed.append(Path(path).name) or real_sha(path))
    _load(spec, tmp_path)
    assert not [n for n in hashed if n.endswith(".json")]  # the instances files: size and mtime as recorded
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched (or copied): same bytes
    hashed.clear()
    _load(spec, tmp_path)
    assert [n for n in hashed if n.endswith(".json")] == [source.name]
    hashed.clear()
    _load(spec, tmp_path)  # the match was recorded: not hashed again
    assert not [n for n in hashed if n.endswith(".json")]
    # other bytes of the same size under the recorded mtime (what `cp -p` of an edited copy leaves): the ctime tells
    before = source.stat()
    text = source.read_text()
    edited = text.replace('"bbox": [4.0, 3.0, 18.0, 12.0]', '"bbox": [4.0, 3.0, 18.0, 11.0]', 1)
    source.write_text(edited)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "changed since `vwbench data prepare` (sha256 " in _refusal(lambda: _load(spec, tmp_path))
    source.write_text(text)
    # the same size, another mtime and other bytes: the hash tells
    text = source.read_text()
    edited = text.replace('"bbox": [4.0, 3.0, 18.0, 12.0]', '"bbox": [4.0, 3.0, 18.0, 11.0]', 1)
    assert len(edited) == len(text) and edited != text
    source.write_text(edited)
    assert "changed since `vwbench data prepare` (sha256 " in _refusal(lambda: _load(spec, tmp_path))


def test_the_split_file_records_each_annotation_file(tmp_path) -> None:
    from vwbench.data.prepare import prepare_dataset
    from vwbench.hashing import sha256_file

    spec, source = _coco(tmp_path)
    path, _ = prepare_dataset(spec, tmp_path, 2)
    sources = json.loads(path.read_text())["sources"]
    assert sorted(sources) == ["annotations/instances_train2017.json", "annotations/instances_val2017.json"]
    recorded = sources["annotations/instances_train2017.json"]
    assert {k: recorded[k] for k in ("sha256", "size", "mtime_ns")} == {"sha256": sha256_file(source), "size": source.stat().st_size, "mtime_ns": source.stat().st_mtime_ns}
    assert recorded["checked_ns"] >= source.stat().st_ctime_ns  # its hash was taken after its last change


def test_a_split_file_of_an_older_vwbench_must_be_prepared_again(tmp_path) -> None:
    """Written before the annotation files were recorded: it cannot be checked, so it is refused
    (not silently trusted), saying to prepare again; preparing again records them."""
    from vwbench.data.prepare import prepare_dataset

    spec, _ = _coco(tmp_path)
    path, _ = prepare_dataset(spec, tmp_path, 2)
    data = json.loads(path.read_text())
    del data["sources"]
    path.write_text(json.dumps(data))
    message = _refusal(lambda: _load(spec, tmp_path))
    assert message == (f"{path} does not record the annotation files it was selected from (a split file of an older vwbench), "
                       "so later edits to them cannot be noticed; run `vwbench data prepare` again")
    prepare_dataset(spec, tmp_path, 2)
    _load(spec, tmp_path)


def test_an_unprepared_dataset_does_not_hash_its_annotation_files(tmp_path, monkeypatch) -> None:
    """Only `data prepare` records them: a run on an unprepared dataset re-parses the annotations
    anyway and must not pay for hashing them too (COCO's train file is ~450 MB)."""
    import vwbench.data.real as real

    spec, _ = _coco(tmp_path)
    hashed: list[str] = []
    real_sha = real.sha256_file
    monkeypatch.setattr(real, "sha256_file", lambda path: hashed.append(Path(path).name) or real_sha(path))
    split = _load(spec, tmp_path)
    assert split.sources is None and not [n for n in hashed if n.endswith(".json")]
