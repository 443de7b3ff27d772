"""Malformed real-dataset files (README "Real datasets": a missing or malformed file stops with one
line naming the file and what was expected, exit code 2): the XML boxes of VOC and ImageNet, the
folder layouts of ImageNet, VOC and DreamBooth, COCO's year and structure, and the split's own
checks on its examples."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.data.fixtures_real import image, voc_xml
from vwbench.data.base import Annotation, DatasetSplit, Example, check_example
from vwbench.errors import DataError, UserError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, UserError) and "\n" not in message, message
    return message


# XML boxes (VOC, ImageNet) ------------------------------------------------------------------


def _xml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_xml_with_a_non_number_or_non_finite_coordinate(tmp_path: Path) -> None:
    from vwbench.data.xml_boxes import EXPECTED, read_xml_annotation

    good = voc_xml("a.jpg", [("dog", (1, 1, 10, 10))])
    path = _xml(tmp_path / "a.xml", good.replace("<xmax>10</xmax>", "<xmax>ten</xmax>"))
    with pytest.raises(DataError) as info:
        read_xml_annotation(path)
    assert _one_line(info) == f"{path}: <object> 1 has <xmax> 'ten', expected a number; {EXPECTED}"
    path = _xml(tmp_path / "b.xml", good.replace("<width>24</width>", "<width>inf</width>"))
    with pytest.raises(DataError) as info:
        read_xml_annotation(path)
    assert _one_line(info) == f"{path}: <size> has <width> 'inf', expected a finite number; {EXPECTED}"


def test_xml_that_is_missing_or_has_an_object_without_box(tmp_path: Path) -> None:
    from vwbench.data.xml_boxes import read_xml_annotation

    with pytest.raises(DataError) as info:
        read_xml_annotation(tmp_path / "gone.xml")
    assert _one_line(info).startswith(f"{tmp_path / 'gone.xml'} not found; expected ")
    path = _xml(tmp_path / "nobox.xml", "<annotation><size><width>24</width><height>16</height></size><object><name>dog</name></object></annotation>")
    with pytest.raises(DataError) as info:
        read_xml_annotation(path)
    assert _one_line(info).startswith(f"{path}: <object> 1 lacks <name> or <bndbox>; expected ")


# ImageNet ---------------------------------------------------------------------------------------


def _imagenet_spec(**synsets: str) -> SimpleNamespace:
    concepts = [SimpleNamespace(name=n) for n in synsets]
    return SimpleNamespace(name="imagenet-test", concepts=concepts, options={"synsets": dict(synsets)})


def test_imagenet_without_its_annotation_folder(tmp_path: Path) -> None:
    from vwbench.data.imagenet import scan_imagenet

    with pytest.raises(DataError) as info:
        scan_imagenet(_imagenet_spec(dog="n02084071"), tmp_path)
    assert _one_line(info) == f"{tmp_path}: no Annotations/CLS-LOC folder (nor ILSVRC/Annotations/CLS-LOC); expected the ILSVRC localization annotations"


def test_imagenet_synsets_that_are_no_wordnet_ids(tmp_path: Path) -> None:
    from vwbench.data.imagenet import synsets

    with pytest.raises(DataError) as info:
        synsets(_imagenet_spec(dog="n02084071", cat="kitty"))
    assert _one_line(info) == "dataset imagenet-test: options.synsets entries ['cat: kitty'] are not WordNet ids like n07745940"


def test_imagenet_without_a_class_folder_or_the_validation_boxes(tmp_path: Path) -> None:
    from vwbench.data.imagenet import scan_imagenet

    base = tmp_path / "ILSVRC" / "Annotations" / "CLS-LOC"
    (base / "train").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        scan_imagenet(_imagenet_spec(dog="n02084071"), tmp_path)
    assert _one_line(info) == f"{base / 'train' / 'n02084071'} not found; expected the training boxes of dog (n02084071)"
    _xml(base / "train" / "n02084071" / "n02084071_1.xml", voc_xml("n02084071_1", [("n02084071", (1, 1, 10, 10))]))
    with pytest.raises(DataError) as info:
        scan_imagenet(_imagenet_spec(dog="n02084071"), tmp_path)
    assert _one_line(info) == f"{base / 'val'} not found; expected the validation boxes (held-out images)"
    _xml(base / "val" / "v1.xml", voc_xml("v1", [("n02084071", (2, 2, 12, 12))]))
    pools = scan_imagenet(_imagenet_spec(dog="n02084071"), tmp_path)
    assert [r.name for r in pools.train] == ["ILSVRC/Data/CLS-LOC/train/n02084071/n02084071_1.JPEG"]
    assert [r.name for r in pools.heldout] == ["ILSVRC/Data/CLS-LOC/val/v1.JPEG"]
    assert pools.train[0].annotations[0].category == "dog"


# VOC ----------------------------------------------------------------------------------------------


def test_voc_without_a_devkit_names_the_places_it_looked(tmp_path: Path) -> None:
    from vwbench.data.voc import find_devkit

    with pytest.raises(DataError) as info:
        find_devkit(tmp_path)
    assert _one_line(info) == (f"{tmp_path}: no VOC folder found; expected Annotations/, JPEGImages/ and ImageSets/Main/ in it "
                               "or in one of VOCdevkit/VOC2012, VOC2012, VOCdevkit/VOC2007, VOC2007")


def test_voc_image_set_list_that_is_not_utf8(tmp_path: Path) -> None:
    from vwbench.data.voc import read_voc_split

    listing = tmp_path / "ImageSets" / "Main" / "train.txt"
    listing.parent.mkdir(parents=True)
    listing.write_bytes(b"2008_000001\n\xff\xfe\n")
    with pytest.raises(DataError) as info:
        read_voc_split(tmp_path, "train", {})
    assert _one_line(info).startswith(f"{listing}: not UTF-8 text (") and info.value.args[0].endswith("); expected one image id per line")


# DreamBooth ---------------------------------------------------------------------------------------


def test_dreambooth_subject_folder_missing_or_without_photos(tmp_path: Path) -> None:
    from vwbench.data.dreambooth import subject_photos

    with pytest.raises(DataError) as info:
        subject_photos(tmp_path, "dog")
    assert _one_line(info) == f"{tmp_path / 'dog'} not found; expected the DreamBooth subject folder of 'dog'"
    (tmp_path / "dataset" / "dog").mkdir(parents=True)
    (tmp_path / "dataset" / "dog" / "notes.txt").write_text("no photos here")
    with pytest.raises(DataError) as info:
        subject_photos(tmp_path, "dog")
    assert _one_line(info) == f"{tmp_path / 'dataset' / 'dog'} has no .jpg/.png photos; expected the photos of subject 'dog'"
    image(tmp_path / "dataset" / "dog" / "b.png", 3)
    image(tmp_path / "dataset" / "dog" / "a.JPG", 4)
    assert [p.name for p in subject_photos(tmp_path, "dog")] == ["a.JPG", "b.png"]


def test_dreambooth_boxes_listing_a_photo_that_is_not_there(tmp_path: Path) -> None:
    import json

    from vwbench.data.dreambooth import scan_dreambooth

    image(tmp_path / "dataset" / "dog" / "00.jpg", 1)
    boxes = {
        "images": [{"id": 1, "file_name": "dog/00.jpg", "width": 24, "height": 16}, {"id": 2, "file_name": "dog/01.jpg", "width": 24, "height": 16}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}, {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "dog"}],
    }
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    spec = SimpleNamespace(name="db", concepts=[SimpleNamespace(name="dog")], options={})
    with pytest.raises(DataError) as info:
        scan_dreambooth(spec, tmp_path)
    assert _one_line(info) == f"{tmp_path / 'boxes.json'}: lists dataset/dog/01.jpg, but {tmp_path / 'dataset' / 'dog' / '01.jpg'} does not exist"


# COCO ---------------------------------------------------------------------------------------------


def test_coco_year_outside_the_known_ones(tmp_path: Path) -> None:
    from vwbench.data.coco import _year

    with pytest.raises(DataError) as info:
        _year(SimpleNamespace(name="coco", options={"year": 2012}), tmp_path)
    assert _one_line(info) == "dataset coco: options.year is 2012; choose one of 2017, 2014"
    assert _year(SimpleNamespace(name="coco", options={"year": 2014}), tmp_path) == "2014"  # a number is read as its text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"images": [{"id": 1}], "annotations": [], "categories": [{"name": "dog"}]}, "f.json: categories[0] has no 'id'"),
        ({"images": [{"id": True}], "annotations": [], "categories": []}, "f.json: images[0] has id True; expected an integer"),
        ({"images": [{"id": 1.5}], "annotations": [], "categories": []}, "f.json: images[0] has id 1.5; expected an integer"),
        ({"images": [{"id": 7}, {"id": "7"}], "annotations": [], "categories": []}, "f.json: duplicate image id '7' (images[1]); ids must be unique"),
        ({"images": [], "annotations": {}, "categories": []}, "f.json: not a COCO instances file (expected 'images', 'annotations' and 'categories' lists)"),
    ],
)
def test_coco_structure_problems_name_the_entry(data, expected: str) -> None:
    from vwbench.data.coco_format import check_instances

    with pytest.raises(DataError) as info:
        check_instances(data, "f.json")
    assert str(info.value) == expected


# the split's own checks ---------------------------------------------------------------------------


def _example(image_id: str = "img1", width: int = 24, height: int = 16, boxes=((1.0, 1.0, 10.0, 8.0, "dog"),)) -> Example:
    return Example(image_id, width, height, [Annotation((x, y, w, h), c) for x, y, w, h, c in boxes], loader=lambda: None)


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (_example(width=0), "tiny: image img1: image size 0x16 is not a positive whole number of pixels"),
        (_example(boxes=()), "tiny: image img1: the image has no boxes, so it has no concept label; drop it or annotate it"),
        (_example(boxes=((1.0, 1.0, 10.0, 8.0, ""),)), "tiny: image img1: box 0 has no category name"),
        (_example(boxes=((1.0, 1.0, float("nan"), 8.0, "dog"),)), "tiny: image img1: box 0 ('dog') is (1.0, 1.0, nan, 8.0); expected four finite numbers [x, y, width, height]"),
    ],
)
def test_check_example_names_the_image_and_the_problem(example: Example, expected: str) -> None:
    with pytest.raises(DataError) as info:
        check_example("tiny", example)
    assert str(info.value) == expected


def test_an_example_without_boxes_has_no_concept_label() -> None:
    with pytest.raises(DataError, match="image img1 has no boxes, so it has no concept label"):
        _ = _example(boxes=()).concept


def test_an_unreadable_image_file_is_named(tmp_path: Path) -> None:
    from PIL import Image

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    ex = Example("img1", 24, 16, [Annotation((1.0, 1.0, 5.0, 5.0), "dog")], loader=lambda: Image.open(bad), path=bad)
    with pytest.raises(DataError) as info:
        ex.load_image()
    message = _one_line(info)
    assert message.startswith(f"{bad}: not a readable image (") and message.endswith("); replace the file or remove it from the dataset")


def test_a_split_with_an_unknown_concept_or_too_few_training_images(tmp_path: Path) -> None:
    from vwbench.data.base import Concept

    concepts = [Concept("dog", "dog"), Concept("cat", "cat")]
    dogs = [_example(f"d{i}") for i in range(2)]
    cats = [_example(f"c{i}", boxes=((1.0, 1.0, 10.0, 8.0, "cat"),)) for i in range(1)]
    split = DatasetSplit("tiny", concepts, train=dogs + cats, heldout=[], manifest=None)
    with pytest.raises(DataError) as info:
        split.validate(2, check_files=False)
    assert str(info.value) == "tiny: concept 'cat' has 1 training images, 2 are required; add images of it or lower images_per_concept"
    fox = _example("f0", boxes=((1.0, 1.0, 10.0, 8.0, "fox"),))
    split = DatasetSplit("tiny", concepts, train=dogs + cats + [fox], heldout=[], manifest=None)
    with pytest.raises(DataError) as info:
        split.validate(1, check_files=False)
    assert str(info.value) == "tiny: image f0 is labelled 'fox', which is not one of the dataset's concepts"
