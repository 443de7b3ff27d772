"""The real-format loaders on fixtures written in each on-disk format, and their one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.data import fixtures_real as fx
from vwbench.data.coco import load_coco_dataset
from vwbench.data.dreambooth import load_dreambooth_dataset
from vwbench.data.imagenet import load_imagenet_dataset
from vwbench.data.real import SPLIT_FILE, load_real_dataset, split_payload
from vwbench.data.voc import load_voc_dataset
from vwbench.errors import DataError
from vwbench.registry import TaskRegistry

PAPER = TaskRegistry.from_dir()


def paper_spec(name: str, heldout: int = 2):
    return PAPER.dataset(name).model_copy(update={"heldout_per_concept": heldout})


def names(spec) -> list[str]:
    return [c.name for c in spec.concepts]


def check_split(split, spec, per_concept: int, heldout: int) -> None:
    for concept in names(spec):
        train = split.train_of(concept)
        assert len(train) == per_concept
        assert sum(e.concept == concept for e in split.heldout) == heldout
    split.validate(per_concept)
    image = split.train[0].load_image()
    assert image.mode == "RGB" and image.size == (split.train[0].width, split.train[0].height) == (fx.W, fx.H)
    assert all(len(h) == 64 for _, h in split.manifest.entries)
    assert {n.split("/", 1)[0] for n, _ in split.manifest.entries} == {"train", "heldout"}


def test_coco_paper_concepts_load(tmp_path):
    spec = paper_spec("coco")
    fx.write_coco(tmp_path / "coco", names(spec))
    split = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    check_split(split, spec, 2, 2)
    dog = split.train_of("dog")[0]
    assert dog.path.parent.name == "train2017" and dog.boxes_of("dog") == [(4.0, 3.0, 22.0, 15.0)]
    assert {a.category for a in dog.annotations} == {"dog", "person"}
    assert all(e.path.parent.name == "val2017" for e in split.heldout)


def test_voc_paper_concepts_load_with_renamed_classes(tmp_path):
    spec = paper_spec("voc")
    voc_classes = ["aeroplane" if n == "airplane" else n for n in names(spec)]
    fx.write_voc(tmp_path / "voc", voc_classes)
    split = load_voc_dataset(spec, images_per_concept=3, data_root=tmp_path)
    check_split(split, spec, 3, 2)
    plane = split.train_of("airplane")[0]
    # VOC's 1-based (5, 4, 22, 15) is the 0-based corner box (4, 3, 22, 15)
    assert plane.boxes_of("airplane") == [(4.0, 3.0, 22.0, 15.0)]


def test_imagenet_paper_concepts_load_by_synset(tmp_path):
    spec = paper_spec("imagenet")
    wnids = [spec.options["synsets"][n] for n in names(spec)]
    fx.write_imagenet(tmp_path / "imagenet", wnids)
    split = load_imagenet_dataset(spec, images_per_concept=2, data_root=tmp_path)
    check_split(split, spec, 2, 2)
    held = [e for e in split.heldout if e.concept == "scuba diver"][0]
    assert {a.category for a in held.annotations} == {"scuba diver", "n99999999"}


def test_dreambooth_loads_boxes_and_repeats_training_photos(tmp_path):
    spec = paper_spec("dreambooth", heldout=25)
    folder = tmp_path / "dreambooth"
    fx.write_dreambooth_photos(folder, names(spec), n=5)
    fx.write_dreambooth_boxes(folder, names(spec))
    split = load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    # 5 photos: 1 held out (n // 3), 4 train, repeated to 8
    check_split(split, spec, 8, 1)
    train = split.train_of("cat2")
    assert len({e.path for e in train}) == 4 and len({e.image_id for e in train}) == 8
    held = {e.path for e in split.heldout if e.concept == "cat2"}
    assert held.isdisjoint({e.path for e in train})


def test_the_manifest_holds_the_boxes_not_only_the_images(tmp_path):
    """Reviewed boxes change what detection trains and scores on: the split's hash (and so every
    cache key built on it) must change with them."""
    spec = paper_spec("dreambooth", heldout=25)
    folder = tmp_path / "dreambooth"
    fx.write_dreambooth_photos(folder, names(spec), n=5)
    boxes = fx.write_dreambooth_boxes(folder, names(spec))
    before = load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path).manifest.hash
    coco = json.loads(boxes.read_text())
    coco["annotations"][0]["bbox"] = [5, 3, 17, 12]
    boxes.write_text(json.dumps(coco))
    assert load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path).manifest.hash != before


def test_file_names_with_a_hash_sign_survive_a_prepared_split(tmp_path):
    """`#` marks a repeated training photo inside vwbench; a photo's own `#` must stay in its name."""
    spec = paper_spec("dreambooth", heldout=25)
    folder = tmp_path / "dreambooth"
    fx.write_dreambooth_photos(folder, names(spec), n=5)
    for photo in sorted((folder / "dataset").glob("*/*.jpg")):
        photo.rename(photo.with_name(photo.stem + "#v2.jpg"))
    fx.write_dreambooth_boxes(folder, names(spec))
    split = load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    payload = split_payload(spec, split, 8)
    assert all(r["name"].endswith("#v2.jpg") for r in payload["train"] + payload["heldout"])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"]), "repeats file_name"),
    (lambda d: d["annotations"][0].update(iscrowd="0"), "iscrowd '0' is not 0 or 1"),
    (lambda d: d["annotations"][0].update(bbox="2255"), "is not a list of 4 numbers"),
    (lambda d: d["annotations"][0].update(category_id=10.7), "is not an integer id"),
    (lambda d: d["images"][0].update(width=float("inf")), "is malformed"),
])
def test_malformed_coco_entries_are_one_line(tmp_path, mutate, message):
    spec = paper_spec("coco")
    fx.write_coco(tmp_path / "coco", names(spec))
    path = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)


def test_sixteen_bit_greyscale_keeps_its_shades():
    import numpy as np
    from PIL import Image

    from vwbench.data.base import to_rgb

    grey = Image.fromarray(np.array([[0, 40000], [65535, 1000]], dtype=np.uint16))  # I;16
    assert grey.mode.startswith("I")
    rgb = np.asarray(to_rgb(grey))
    assert rgb.shape == (2, 2, 3) and rgb[..., 0].tolist() == [[0, 156], [255, 3]]  # PIL's convert made these 255 but the first
    with pytest.raises(ValueError, match="floating-point"):
        to_rgb(Image.fromarray(np.zeros((2, 2), np.float32)))


def test_selection_is_seeded_and_order_independent(tmp_path):
    spec = paper_spec("coco")
    fx.write_coco(tmp_path / "coco", names(spec), train_n=5)
    a = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    b = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    assert a.manifest.hash == b.manifest.hash
    other = spec.model_copy(update={"options": {**spec.options, "seed": 1}})
    c = load_coco_dataset(other, images_per_concept=2, data_root=tmp_path)
    assert [e.image_id for e in c.train] != [e.image_id for e in a.train]
    # the same files listed in another order (image ids reversed, so the reader's id order is the
    # reverse of the file names' order) give the same selection
    path = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    flip = {i["id"]: 10**6 - i["id"] for i in data["images"]}
    data["images"] = [{**i, "id": flip[i["id"]]} for i in reversed(data["images"])]
    data["annotations"] = [{**x, "image_id": flip[x["image_id"]]} for x in reversed(data["annotations"])]
    path.write_text(json.dumps(data))
    d = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    assert [e.path for e in d.train] == [e.path for e in a.train]


def test_data_root_from_environment(tmp_path, monkeypatch):
    spec = paper_spec("coco")
    fx.write_coco(tmp_path / "coco", names(spec))
    monkeypatch.setenv("VWBENCH_DATA", str(tmp_path))
    assert len(load_coco_dataset(spec, images_per_concept=2, data_root=None).train) == 20
    monkeypatch.delenv("VWBENCH_DATA")
    with pytest.raises(DataError, match="--data-root"):
        load_coco_dataset(spec, images_per_concept=2, data_root=None)


def test_prepared_split_is_reused_and_checked(tmp_path):
    from vwbench.data.coco import coco_sources, scan_coco
    from vwbench.data.prepare import prepare_dataset

    spec = paper_spec("coco")
    folder = fx.write_coco(tmp_path / "coco", names(spec))
    _, split = prepare_dataset(spec, tmp_path, 2)

    def no_scan(spec, folder):
        raise AssertionError("a prepared split must not re-parse the annotation files")

    # the annotation files are not parsed again: the prepared selection is used as it is
    again = load_real_dataset(spec, no_scan, images_per_concept=2, data_root=tmp_path, sources=coco_sources)
    assert again.manifest.hash == split.manifest.hash
    assert [e.annotations for e in again.train] == [e.annotations for e in split.train]
    # but they must still be there, unchanged (tests/data/test_prepared_annotations_checked.py)
    (folder / "annotations" / "instances_train2017.json").rename(folder / "train.json")
    with pytest.raises(DataError, match="instances_train2017.json is missing .* run `vwbench data prepare` again"):
        load_real_dataset(spec, scan_coco, images_per_concept=2, data_root=tmp_path, sources=coco_sources)
    (folder / "train.json").rename(folder / "annotations" / "instances_train2017.json")
    fx.image(split.train[0].path, 255)  # a changed image file is caught
    with pytest.raises(DataError, match="changed since"):
        load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)


# ---- malformed variants -------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def _coco(tmp_path, mutate) -> Path:
    spec = paper_spec("coco")
    folder = fx.write_coco(tmp_path / "coco", names(spec))
    path = folder / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["annotations"][0].update(category_id=999), "unknown category"),
        (lambda d: d["annotations"][0].update(bbox=[20, 2, 10, 5]), "outside its 24x16 image"),
        (lambda d: d["annotations"][0].update(bbox=[2, 2, 0, 5]), "zero-area box"),
        (lambda d: d["annotations"][0].update(image_id=5), "not in 'images'"),
        (lambda d: d.pop("categories"), "COCO instances file"),
        (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id"),
        # a string of digits is read as its integer: "1000" and 1000 would merge two images' boxes
        (lambda d: d["images"][1].update(id=str(d["images"][0]["id"])), "duplicate image id '1000' (images[1])"),
        (lambda d: d["images"][0].update(width=10**400), "is malformed (width/height 1000000000"),
        (lambda d: d["images"][0].update(width=24.9), "is malformed (width/height 24.9 is not an integer from 1 to 1000000)"),
        (lambda d: d["images"][0].update(height=True), "is malformed (width/height True is not an integer"),
        (lambda d: d["images"][0].update(width=0), "is malformed (width/height 0 is not an integer"),
        (lambda d: d["images"][0].update(file_name=None), "is malformed (file_name None is not a file name)"),
        (lambda d: d["images"][0].update(file_name=""), "is malformed (file_name '' is not a file name)"),
    ],
)
def test_coco_malformed(tmp_path, mutate, expected):
    path = _coco(tmp_path, mutate)
    with pytest.raises(DataError) as exc:
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)
    message = _one_line(exc)
    assert expected in message and str(path) in message


def test_coco_bad_json_and_missing_file(tmp_path):
    path = _coco(tmp_path, lambda d: None)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)
    path.unlink()
    with pytest.raises(DataError, match="instances_train2017.json not found"):
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)


def test_coco_json_nested_too_deep_is_one_line(tmp_path):
    path = _coco(tmp_path, lambda d: None)
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError) as exc:
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)
    assert _one_line(exc).startswith(f"{path} nests its JSON too deep to read; expected ")


def test_a_folder_named_like_an_annotation_or_image_file_is_called_a_folder(tmp_path):
    path = _coco(tmp_path, lambda d: None)
    victim = sorted((path.parents[1] / "train2017").iterdir())[0]
    victim.unlink()
    victim.mkdir()
    with pytest.raises(DataError, match=f"^{victim} is a folder; expected the image file of coco"):
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError, match=f"^{path} is a folder; expected a COCO instances file"):
        load_coco_dataset(paper_spec("coco"), images_per_concept=2, data_root=tmp_path)


def test_coco_missing_image_file(tmp_path):
    spec = paper_spec("coco")
    folder = fx.write_coco(tmp_path / "coco", names(spec), train_n=2)
    victim = sorted((folder / "train2017").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError) as exc:
        load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    assert str(victim) in _one_line(exc)


def test_too_few_images_names_the_concept(tmp_path):
    spec = paper_spec("coco")
    fx.write_coco(tmp_path / "coco", names(spec), train_n=2)
    with pytest.raises(DataError, match="'laptop' labels 2 training image"):
        load_coco_dataset(spec, images_per_concept=3, data_root=tmp_path)


def _voc(tmp_path) -> tuple[Path, object]:
    spec = paper_spec("voc")
    devkit = fx.write_voc(tmp_path / "voc", ["aeroplane" if n == "airplane" else n for n in names(spec)])
    return devkit, spec


@pytest.mark.parametrize(
    "content, expected",
    [
        ("<annotation><size><width>24</width>", "not valid XML"),
        (fx.voc_xml("a.jpg", [("spaceship", (5, 4, 22, 15))]), "unknown category"),
        (fx.voc_xml("a.jpg", [("dog", (5, 4, 40, 15))]), "outside its 24x16 image"),
        (fx.voc_xml("a.jpg", [("dog", (9, 4, 9, 15))]), "zero-area box"),
        ("<annotation><filename>a.jpg</filename></annotation>", "<size>"),
    ],
)
def test_voc_malformed(tmp_path, content, expected):
    devkit, spec = _voc(tmp_path)
    path = sorted((devkit / "Annotations").glob("*.xml"))[0]
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)
    message = _one_line(exc)
    assert expected in message and str(path) in message


def test_voc_missing_annotation_and_image_set(tmp_path):
    devkit, spec = _voc(tmp_path)
    path = sorted((devkit / "Annotations").glob("*.xml"))[0]
    path.unlink()
    with pytest.raises(DataError, match=f"{path.name} not found"):
        load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)
    (devkit / "ImageSets" / "Main" / "train.txt").unlink()
    with pytest.raises(DataError, match="train.txt not found"):
        load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)


def test_imagenet_malformed(tmp_path):
    spec = paper_spec("imagenet")
    base = fx.write_imagenet(tmp_path / "imagenet", [spec.options["synsets"][n] for n in names(spec)])
    path = sorted((base / "Annotations" / "CLS-LOC" / "val").glob("*.xml"))[0]
    path.write_text(fx.voc_xml(path.stem, [("strawberry", (4, 3, 22, 15))]))
    with pytest.raises(DataError, match="not a WordNet synset id"):
        load_imagenet_dataset(spec, images_per_concept=2, data_root=tmp_path)
    path.write_text(fx.voc_xml(path.stem, [("n07745940", (4, 3, 4, 15))]))
    with pytest.raises(DataError, match="zero-area"):
        load_imagenet_dataset(spec, images_per_concept=2, data_root=tmp_path)
    no_synsets = spec.model_copy(update={"options": {"subdir": "imagenet"}})
    with pytest.raises(DataError, match="options.synsets"):
        load_imagenet_dataset(no_synsets, images_per_concept=2, data_root=tmp_path)


def test_dreambooth_without_boxes_says_how_to_make_them(tmp_path):
    spec = paper_spec("dreambooth")
    fx.write_dreambooth_photos(tmp_path / "dreambooth", names(spec))
    with pytest.raises(DataError) as exc:
        load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    assert "vwbench data box" in _one_line(exc)
    (tmp_path / "dreambooth" / "boxes.json").mkdir()
    with pytest.raises(DataError) as exc:
        load_dreambooth_dataset(spec, images_per_concept=8, data_root=tmp_path)
    assert _one_line(exc).startswith(f"{tmp_path / 'dreambooth' / 'boxes.json'} is a folder; expected the COCO file of DreamBooth's boxes")


def main_exit(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in-process (``vwbench.cli.main``: the mapping of errors to one
    line and exit code 2) and return its exit code and stderr."""
    from vwbench import cli

    monkeypatch.setattr(sys, "argv", ["vwbench", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, capsys.readouterr().err


def test_cli_bad_dataset_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """Through `vwbench run`: the data stage fails before any model is loaded."""
    spec = paper_spec("voc")
    devkit, _ = _voc(tmp_path)
    path = sorted((devkit / "Annotations").glob("*.xml"))[0]
    path.write_text("<annotation>")
    monkeypatch.setenv("VWBENCH_DATA", str(tmp_path))
    code, err = main_exit(monkeypatch, capsys, "run", "--task", "owlv2->owlv2", "--dataset", spec.name, "--out", str(tmp_path / "o"))
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not valid XML" in errors[0] and str(path) in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # the --out this run made is removed again: nothing was written in it
    (tmp_path / "kept").mkdir()
    code, err = main_exit(monkeypatch, capsys, "run", "--task", "owlv2->owlv2", "--dataset", spec.name, "--out", str(tmp_path / "kept"))
    assert code == 2 and (tmp_path / "kept").is_dir()  # a folder the user made stays


def test_every_paper_dataset_has_a_loader_and_complete_options():
    from vwbench.data.voc import VOC_CLASSES
    from vwbench.registry import dataset_loader

    for name in ("coco", "voc", "imagenet", "dreambooth"):
        spec = PAPER.dataset(name)
        assert callable(dataset_loader(spec.loader)) and spec.tier == "paper"
    imagenet = PAPER.dataset("imagenet")
    assert set(imagenet.options["synsets"]) == set(names(imagenet))
    voc = PAPER.dataset("voc")
    renamed = {voc.options["names"].get(c, c) for c in VOC_CLASSES}
    assert set(names(voc)) <= renamed
