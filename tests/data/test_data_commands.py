"""`vwbench data prepare` and `vwbench data box` through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.data import fixtures_real as fx
from vwbench.cli import app
from vwbench.data.coco import load_coco_dataset
from vwbench.data.dreambooth import load_dreambooth_dataset
from vwbench.data.real import SPLIT_FILE
from vwbench.registry import TaskRegistry


def test_prepare_writes_a_manifest_the_loader_uses(tmp_path):
    spec = TaskRegistry.from_dir().dataset("coco")
    folder = fx.write_coco(tmp_path / "coco", [c.name for c in spec.concepts], train_n=9, val_n=2)
    result = CliRunner().invoke(app, ["data", "prepare", "--dataset", "coco", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "laptop: 8 train, 2 held out" in result.output
    split_file = json.loads((folder / SPLIT_FILE).read_text())
    entries = split_file["manifest"]["entries"]
    assert len(entries) == 100 and all(len(e["sha256"]) == 64 for e in entries)
    assert split_file["settings"]["images_per_concept"] == 8 and len(split_file["train"]) == 80
    loaded = load_coco_dataset(spec, images_per_concept=8, data_root=tmp_path)
    assert loaded.manifest.hash == split_file["manifest"]["hash"]
    assert f"manifest {loaded.manifest.hash}" in result.output


def test_prepare_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from tests.data.test_real_loaders import main_exit

    def prepare(dataset: str) -> tuple[int, str]:
        return main_exit(monkeypatch, capsys, "data", "prepare", "--dataset", dataset, "--root", str(tmp_path))

    code, err = prepare("coco")
    assert code == 2 and err.count("\n") == 1 and "coco" in err and "Traceback" not in err
    fx.write_coco(tmp_path / "coco", ["dog"], train_n=1)
    path = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [0, 0, 0, 4]
    path.write_text(json.dumps(data))
    code, err = prepare("coco")
    assert code == 2 and err.count("\n") == 1 and "zero-area box" in err and str(path) in err
    code, err = prepare("synth-coco")
    assert code == 2 and "nothing to prepare" in err
    assert not (tmp_path / "coco" / SPLIT_FILE).exists()


def _prior_box_detector(tiny_tasks: Path, folder: Path) -> Path:
    """The tiny OWLv2 with its box head zeroed, so every region predicts its prior box (the random
    head's boxes are degenerate, which `data box` rightly refuses to keep)."""
    import torch
    from transformers import Owlv2ForObjectDetection

    from vwbench.zoo.manifest import write_manifest

    shutil.copytree(tiny_tasks.parent / "owlv2", folder)
    (folder / "manifest.json").unlink()
    model = Owlv2ForObjectDetection.from_pretrained(folder)
    with torch.no_grad():
        for p in model.box_head.parameters():
            p.zero_()
    model.save_pretrained(folder)
    write_manifest(folder)
    return folder


def _booth_tasks(tiny_tasks: Path, tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    tier = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())
    tier["models"]["owlv2"]["checkpoint"]["path"] = str(_prior_box_detector(tiny_tasks, tmp_path / "owlv2"))
    (tasks / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    dataset = {
        "name": "tinybooth", "tier": "tiny", "loader": "dreambooth", "heldout_per_concept": 1,
        "options": {"subdir": "booth"}, "concepts": [{"name": "cat2", "init_word": "cat"}, {"name": "red_cup", "init_word": "cup"}],
    }
    (tasks / "datasets" / "tinybooth.yaml").write_text(yaml.safe_dump(dataset))
    (tasks / "suites" / "booth.yaml").write_text(yaml.safe_dump({"name": "booth", "datasets": ["tinybooth"], "pairs": ["owlv2->owlv2"]}))
    return tasks


def test_box_writes_a_coco_file_the_loader_reads(tiny_tasks, tmp_path):
    tasks = _booth_tasks(tiny_tasks, tmp_path)
    # square photos: OWLv2 pads to a square, and boxes in the padding cannot be kept
    folder = fx.write_dreambooth_photos(tmp_path / "data" / "booth", ["cat2", "red_cup"], n=4, size=(64, 64))
    args = ["data", "box", "--dataset", "tinybooth", "--root", str(tmp_path / "data"), "--tasks-dir", str(tasks), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    coco = json.loads((folder / "boxes.json").read_text())
    assert len(coco["images"]) == len(coco["annotations"]) == 8
    assert {a["prompt"] for a in coco["annotations"]} == {"a photo of cat", "a photo of red cup"}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= 64.01 and y + h <= 64.01
        assert 0.0 <= ann["score"] <= 1.0
    spec = TaskRegistry.from_dir(tasks).dataset("tinybooth")
    split = load_dreambooth_dataset(spec, images_per_concept=3, data_root=tmp_path / "data")
    assert len(split.train_of("red_cup")) == 3 and sum(e.concept == "cat2" for e in split.heldout) == 1
    # reviewed boxes are never overwritten silently
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "--force" in str(again.exception)


def test_box_keeps_no_degenerate_box(tiny_tasks, tmp_path):
    """The random tiny detector's boxes collapse to lines: the photos are listed, unboxed."""
    from vwbench.data.boxing import subject_prompt

    assert [subject_prompt(s) for s in ("cat2", "duck_toy", "grey_sloth_plushie")] == ["cat", "duck toy", "grey sloth plushie"]
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    (tasks / "datasets" / "tinybooth.yaml").write_text(yaml.safe_dump({
        "name": "tinybooth", "tier": "tiny", "loader": "dreambooth", "heldout_per_concept": 1,
        "options": {"subdir": "booth"}, "concepts": [{"name": "cat2", "init_word": "cat"}, {"name": "dog", "init_word": "dog"}],
    }))
    folder = fx.write_dreambooth_photos(tmp_path / "data" / "booth", ["cat2", "dog"], n=2, size=(64, 64))
    result = CliRunner().invoke(app, ["data", "box", "--dataset", "tinybooth", "--root", str(tmp_path / "data"), "--tasks-dir", str(tasks), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    coco = json.loads((folder / "boxes.json").read_text())
    assert len(coco["images"]) == 4 and coco["annotations"] == []
    assert "4 photo(s) got no usable box" in result.output


def test_prepare_on_a_read_only_dataset_says_what_to_do(tmp_path, monkeypatch, capsys):
    """`data prepare` has no --out: the split file goes beside the dataset, and runs do without it."""
    import errno
    import os

    from tests.data.test_real_loaders import main_exit
    from vwbench.results import atomic

    spec = TaskRegistry.from_dir().dataset("coco")
    fx.write_coco(tmp_path / "coco", [c.name for c in spec.concepts], train_n=1, val_n=2)

    def read_only(path, data, phase):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic, "_synced_temp", read_only)
    code, err = main_exit(monkeypatch, capsys, "data", "prepare", "--dataset", "coco", "--root", str(tmp_path), "--images-per-concept", "1")
    assert code == 2 and err.count("\n") == 1, err
    assert err == (
        f"error: cannot write {tmp_path / 'coco' / SPLIT_FILE}: Read-only file system; the split file goes beside the dataset: make that "
        "folder writable, or leave the dataset unprepared (runs select the same split from its annotations each time)\n"
    )


def test_box_refuses_a_folder_where_the_boxes_file_goes_before_loading_the_detector(tiny_tasks, tmp_path):
    tasks = _booth_tasks(tiny_tasks, tmp_path)
    fx.write_dreambooth_photos(tmp_path / "data" / "booth", ["cat2", "red_cup"], n=4, size=(64, 64))
    (tmp_path / "in-the-way").mkdir()
    args = ["data", "box", "--dataset", "tinybooth", "--root", str(tmp_path / "data"), "--tasks-dir", str(tasks), "--device", "cpu", "--force"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "in-the-way")])
    assert result.exit_code != 0 and str(result.exception) == f"cannot write {tmp_path / 'in-the-way'}: it is a folder; move it away or choose another --out"


def test_box_names_a_decompression_bomb_in_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from vwbench.data.boxing import _example
    from vwbench.errors import DataError

    photo = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(photo)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x64 is over twice the limit: PIL refuses it
    with pytest.raises(DataError, match=f"^{photo}: not a readable image \\(Image size"):
        _example(photo, "big")
