"""Pins of the real-dataset arithmetic (mutation-testing round 5): the largest-box label, the
checks every split passes before training, box clipping and tolerance, and the seeded selection of
a shared pool. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import pytest
from PIL import Image

from tests.data import fixtures_real as fx

from vwbench.data.base import Annotation, Concept, DatasetSplit, Example, Manifest, check_example, largest_box_label
from vwbench.data.coco import _year, load_coco_dataset, read_instances
from vwbench.data.real import SPLIT_FILE, Pools, Record, checked_box, dataset_folder, select, split_payload
from vwbench.errors import DataError


def _ann(bbox, category: str) -> Annotation:
    return Annotation(tuple(float(v) for v in bbox), category)


def _example(image_id: str, boxes, width: int = 40, height: int = 30) -> Example:
    return Example(image_id, width, height, [_ann(b, c) for c, b in boxes], loader=lambda: Image.new("RGB", (width, height)))


# ---- the label: category of the largest box (area = width x height) ---------------------------

# a tall thin box (w 4, h 20: area 80) and a squat wide one (w 8, h 8: area 64); by width alone
# (4 < 8) or width squared (16 < 64) the squat one would win, by area the tall one does
TALL_THIN = ("cat", (0, 0, 4, 20))
SQUAT = ("dog", (10, 10, 8, 8))


def test_the_label_is_the_category_of_the_box_with_the_largest_area() -> None:
    ex = _example("a", [SQUAT, TALL_THIN])
    assert ex.annotations[0].area == 64.0 and ex.annotations[1].area == 80.0
    assert ex.concept == "cat"
    assert largest_box_label(ex.annotations) == "cat"
    assert Record("a.jpg", 40, 30, list(ex.annotations)).label == "cat"


# ---- DatasetSplit.validate ----------------------------------------------------------------------


def _split(train, heldout, concepts=("cat", "dog")) -> DatasetSplit:
    return DatasetSplit("pins", [Concept(c, c) for c in concepts], train, heldout, Manifest("pins", ()))


def _of(concept: str, image_id: str) -> Example:
    return _example(image_id, [(concept, (1, 1, 10, 10))])


def test_validate_accepts_a_sound_split() -> None:
    train = [_of("cat", "t0"), _of("cat", "t1"), _of("dog", "t2"), _of("dog", "t3")]
    _split(train, [_of("cat", "h0"), _of("dog", "h1")]).validate(2, check_files=False)


def test_validate_refuses_a_repeated_image_id() -> None:
    train = [_of("cat", "t0"), _of("cat", "t0"), _of("dog", "t2"), _of("dog", "t3")]
    with pytest.raises(DataError, match="'t0' appears twice among the training images"):
        _split(train, [_of("cat", "h0")]).validate(2, check_files=False)


def test_validate_refuses_one_training_image_too_few() -> None:
    train = [_of("cat", "t0"), _of("cat", "t1"), _of("dog", "t2")]  # dog: 1 of the 2 required
    with pytest.raises(DataError, match="concept 'dog' has 1 training images, 2 are required"):
        _split(train, [_of("cat", "h0")]).validate(2, check_files=False)


def test_validate_refuses_an_image_labelled_with_no_concept_of_the_dataset() -> None:
    train = [_of("cat", "t0"), _of("dog", "t1")]
    with pytest.raises(DataError, match="labelled 'bird', which is not one of the dataset's concepts"):
        _split(train, [_of("bird", "h0")]).validate(1, check_files=False)


# ---- check_example: sizes, areas, finiteness, the 1-pixel tolerance ------------------------------


@pytest.mark.parametrize(("bbox", "message"), [
    ((5, 5, 0, 10), "zero or negative area"),  # zero width
    ((5, 5, 10, 0), "zero or negative area"),  # zero height
    ((float("nan"), 5, 10, 10), "four finite numbers"),
    ((5, 5, float("inf"), 10), "four finite numbers"),
    ((-2, 5, 10, 10), "lies outside the 40x30 image"),  # 2 px left of the border: past the 1 px tolerance
    ((30, 5, 12, 10), "lies outside the 40x30 image"),  # right edge at 42: 2 px past
    ((5, 22, 10, 10), "lies outside the 40x30 image"),  # bottom edge at 32: 2 px past
])
def test_check_example_refuses_bad_boxes(bbox, message) -> None:
    with pytest.raises(DataError, match=message):
        check_example("pins", _example("a", [("cat", bbox)]))


def test_check_example_allows_one_pixel_past_the_border() -> None:
    check_example("pins", _example("a", [("cat", (-1, -1, 42, 32))]))  # x -1..41, y -1..31: 1 px past every edge


def test_check_example_refuses_an_image_without_boxes() -> None:
    with pytest.raises(DataError, match="has no boxes"):
        check_example("pins", _example("a", []))


# ---- checked_box: corners to [x, y, w, h], clipped to the image -----------------------------------


def test_checked_box_clips_a_box_within_the_tolerance_to_the_image() -> None:
    # corners (-0.5, -0.75)..(40.5, 30.25) of a 40 x 30 image: within 1 px, clipped to 0..40, 0..30
    assert checked_box("f", "box", -0.5, -0.75, 40.5, 30.25, 40, 30) == (0.0, 0.0, 40.0, 30.0)
    # inside: corners become x, y, width, height
    assert checked_box("f", "box", 2.0, 3.0, 12.0, 8.0, 40, 30) == (2.0, 3.0, 10.0, 5.0)


@pytest.mark.parametrize("corners", [(-1.5, 0, 10, 10), (0, -1.5, 10, 10), (0, 0, 41.5, 10), (0, 0, 10, 31.5)])
def test_checked_box_refuses_more_than_a_pixel_past_the_border(corners) -> None:
    with pytest.raises(DataError, match="outside its 40x30 image"):
        checked_box("f", "box", *corners, 40, 30)


# ---- select: a shared pool (DreamBooth) -----------------------------------------------------------


def _records(concept: str, n: int) -> list[Record]:
    return [Record(f"{concept}/{i}.jpg", 40, 30, [_ann((1, 1, 10, 10), concept)]) for i in range(n)]


def _spec(concepts=("cat",), heldout: int = 2) -> NS:
    return NS(name="pins", concepts=[NS(name=c) for c in concepts], heldout_per_concept=heldout, options={})


@pytest.mark.parametrize(("n", "held_n"), [(2, 1), (3, 1), (5, 1), (6, 2), (9, 2)])
def test_a_shared_pool_holds_out_a_third_but_at_least_one(n, held_n) -> None:
    # k = max(1, min(heldout 2, n // 3)): n 2 -> 1, 3 -> 1, 5 -> 1, 6 -> 2, 9 -> 2
    pool = _records("cat", n)
    train, held = select(_spec(), Pools(pool, shared=True), 8, 0)
    assert len(held) == held_n
    assert not {r.name for r in held} & {r.name for r in train}  # never trained on a held-out photo
    assert len(train) == 8 and {r.name for r in train} | {r.name for r in held} == {r.name for r in pool}


def test_an_official_split_holds_out_exactly_heldout_per_concept_from_the_held_out_pool() -> None:
    spec = _spec(("cat", "dog"), heldout=2)
    train_pool = _records("cat", 5) + _records("dog", 4)
    held_pool = [Record(f"val/{r.name}", 40, 30, r.annotations) for r in _records("cat", 4) + _records("dog", 1)]
    train, held = select(spec, Pools(train_pool, held_pool), 3, 0)
    # concept order, then draw order: 3 cat and 3 dog training images, 2 cat and 1 dog held out
    assert [r.label for r in train] == ["cat"] * 3 + ["dog"] * 3
    assert [r.label for r in held] == ["cat", "cat", "dog"]
    assert all(r.name.startswith("val/") for r in held) and not any(r.name.startswith("val/") for r in train)
    assert len({r.name for r in train}) == 6 and len({r.name for r in held}) == 3


# ---- locating the data, reusing a prepared split -------------------------------------------------


def test_an_explicit_data_root_wins_over_the_environment(tmp_path, monkeypatch) -> None:
    (tmp_path / "coco").mkdir()
    monkeypatch.setenv("VWBENCH_DATA", str(tmp_path / "elsewhere"))
    assert dataset_folder(NS(name="coco", options={}), tmp_path) == tmp_path / "coco"


def test_a_prepared_split_of_other_held_out_settings_is_not_reused(tmp_path) -> None:
    from vwbench.registry import TaskRegistry

    spec = TaskRegistry.from_dir().dataset("coco").model_copy(update={"heldout_per_concept": 2})
    folder = fx.write_coco(tmp_path / "coco", [c.name for c in spec.concepts], train_n=2, val_n=2)
    split = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    (folder / SPLIT_FILE).write_text(json.dumps(split_payload(spec, split, 2)))
    assert len(split.heldout) == 20  # 10 concepts x 2
    one = spec.model_copy(update={"heldout_per_concept": 1})
    assert len(load_coco_dataset(one, images_per_concept=2, data_root=tmp_path).heldout) == 10  # selected again: 10 x 1


# ---- COCO instances: crowd regions, ids, the release year -----------------------------------------


def _instances(path, images, annotations, categories=({"id": 1, "name": "dog"}, {"id": 2, "name": "person"})):
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
    return path


def test_crowd_regions_are_neither_boxes_nor_labels(tmp_path) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}, {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 40, 30], "iscrowd": 1},  # the largest region: a crowd
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20], "iscrowd": 1},  # only a crowd: not listed
    ]
    records = read_instances(_instances(tmp_path / "i.json", images, annotations), "train2017")
    assert [(r.name, r.width, r.height, r.annotations, r.label) for r in records] == [
        ("train2017/a.jpg", 40, 30, [Annotation((1.0, 2.0, 10.0, 5.0), "dog")], "dog"),
    ]


def test_a_boolean_image_id_is_refused(tmp_path) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}]
    annotations = [{"id": 1, "image_id": True, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0}]
    with pytest.raises(DataError, match="True is not an integer id"):
        read_instances(_instances(tmp_path / "i.json", images, annotations), "train2017")


def test_the_2017_release_is_preferred_when_both_are_there(tmp_path) -> None:
    (tmp_path / "annotations").mkdir()
    for year in ("2014", "2017"):
        (tmp_path / "annotations" / f"instances_train{year}.json").write_text("{}")
    assert _year(NS(name="coco", options={}), tmp_path) == "2017"
    assert _year(NS(name="coco", options={"year": 2014}), tmp_path) == "2014"


# ---- ImageNet, VOC and DreamBooth layouts ----------------------------------------------------------


def test_imagenet_corners_are_used_as_given(tmp_path) -> None:
    from vwbench.data.imagenet import load_imagenet_dataset
    from vwbench.registry import TaskRegistry

    spec = TaskRegistry.from_dir().dataset("imagenet").model_copy(update={"heldout_per_concept": 1})
    fx.write_imagenet(tmp_path / "imagenet", [spec.options["synsets"][c.name] for c in spec.concepts], train_n=2, val_n=1)
    split = load_imagenet_dataset(spec, images_per_concept=2, data_root=tmp_path)
    # the fixture's XML corners are (4, 3)..(22, 15): [x 4, y 3, w 18, h 12], not VOC's 1-based (3, 2)
    assert {a.bbox for e in split.train for a in e.annotations} == {(4.0, 3.0, 18.0, 12.0)}
    assert {a.bbox for e in split.heldout for a in e.annotations} == {(4.0, 3.0, 18.0, 12.0), (1.0, 1.0, 4.0, 4.0)}


def test_xml_names_are_stripped_and_a_zero_size_is_refused(tmp_path) -> None:
    from vwbench.data.xml_boxes import read_xml_annotation

    path = tmp_path / "a.xml"
    path.write_text(fx.voc_xml("a.jpg", [("\n   dog \n", (2, 3, 10, 12))]))
    ann = read_xml_annotation(path)
    assert (ann.filename, ann.width, ann.height) == ("a.jpg", fx.W, fx.H)
    assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in ann.objects] == [("dog", 2.0, 3.0, 10.0, 12.0)]
    path.write_text(fx.voc_xml("a.jpg", [], width=0))
    with pytest.raises(DataError, match="<size> is 0x16; expected a positive image size"):
        read_xml_annotation(path)


def test_voc_prefers_2012_and_names_images_from_the_dataset_folder(tmp_path) -> None:
    from vwbench.data.voc import find_devkit, scan_voc

    for year in ("2007", "2012"):
        (tmp_path / "VOCdevkit" / f"VOC{year}" / "Annotations").mkdir(parents=True)
    assert find_devkit(tmp_path) == tmp_path / "VOCdevkit" / "VOC2012"
    devkit = fx.write_voc(tmp_path / "own", ["dog", "cat"], train_n=1, val_n=1)
    pools = scan_voc(NS(name="voc", options={}), devkit)  # the devkit is the dataset folder itself
    assert sorted(r.name for r in pools.train) == ["JPEGImages/2012_train_0000.jpg", "JPEGImages/2012_train_0100.jpg"]
    assert pools.extra == {"format": "voc:."}


def _db_spec(subjects) -> NS:
    return NS(name="db", concepts=[NS(name=s, init_word="dog", anchor_word=None) for s in subjects], heldout_per_concept=1, options={})


def _db_boxes(folder, boxes: list[tuple[str, str]]) -> None:
    """``boxes``: (file name, category) with one box each."""
    cats = sorted({c for _, c in boxes})
    _instances(
        folder / "boxes.json",
        [{"id": i, "file_name": f, "width": fx.W, "height": fx.H} for i, (f, _) in enumerate(boxes, start=1)],
        [{"id": i, "image_id": i, "category_id": cats.index(c) + 1, "bbox": [4, 3, 18, 12], "iscrowd": 0} for i, (_, c) in enumerate(boxes, start=1)],
        [{"id": i, "name": c} for i, c in enumerate(cats, start=1)],
    )


def test_dreambooth_photos_directly_in_the_dataset_folder(tmp_path) -> None:
    from vwbench.data.dreambooth import load_dreambooth_dataset

    folder = tmp_path / "db"
    for k in range(3):
        fx.image(folder / "cat2" / f"{k:02d}.jpg", k)
    _db_boxes(folder, [(f"cat2/{k:02d}.jpg", "cat2") for k in range(3)])
    split = load_dreambooth_dataset(_db_spec(["cat2"]), images_per_concept=2, data_root=tmp_path)
    assert sorted(e.path for e in split.train + split.heldout) == [folder / "cat2" / f"{k:02d}.jpg" for k in range(3)]
    assert all(n.split("/", 1)[1].startswith("cat2/") for n, _ in split.manifest.entries)


def test_dreambooth_refuses_a_box_of_another_subject_and_finds_upper_case_suffixes(tmp_path) -> None:
    from vwbench.data.dreambooth import load_dreambooth_dataset, subject_photos

    folder = tmp_path / "db"
    for subject in ("cat2", "dog3"):
        for k in range(3):
            fx.image(folder / "dataset" / subject / f"{k:02d}.JPG", k)
    assert [p.name for p in subject_photos(folder, "dog3")] == ["00.JPG", "01.JPG", "02.JPG"]
    _db_boxes(folder, [(f"cat2/{k:02d}.JPG", "cat2") for k in range(3)] + [("dog3/00.JPG", "cat2")])
    with pytest.raises(DataError, match="dog3/00.JPG has a box of another category than its subject 'dog3'"):
        load_dreambooth_dataset(_db_spec(["cat2", "dog3"]), images_per_concept=2, data_root=tmp_path)


def test_box_area_is_width_times_height(tmp_path) -> None:
    from tests.data.test_boxing_arithmetic import StubDetector, photos
    from vwbench.data.boxing import box_subjects

    photos(tmp_path, "cat", 1)  # 100 x 50 photos, padded to a 100 px square
    payload = box_subjects(StubDetector([[([0.3, 0.2, 0.2, 0.1], 0.5)]]), tmp_path, ["cat"], tmp_path / "boxes.json")
    (ann,) = payload["annotations"]
    # centre (30, 20), 20 x 10 px: x 20..40, y 15..25
    assert ann["bbox"] == pytest.approx([20.0, 15.0, 20.0, 10.0]) and ann["area"] == pytest.approx(200.0)


# ---- vwbench data prepare ----------------------------------------------------------------------------


def _coco_spec(tmp_path, **write):
    from vwbench.registry import TaskRegistry

    spec = TaskRegistry.from_dir().dataset("coco").model_copy(update={"heldout_per_concept": 1})
    return spec, fx.write_coco(tmp_path / "coco", [c.name for c in spec.concepts], **write)


def test_prepare_decodes_every_selected_image(tmp_path) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, folder = _coco_spec(tmp_path, train_n=2, val_n=1)
    for path in (folder / "val2017").glob("*.jpg"):
        fx.image(path, 7, size=(fx.W + 6, fx.H))  # the files are 30 x 16, the annotations say 24 x 16
    with pytest.raises(DataError, match="the file is 30x16 pixels, its annotations say 24x16"):
        prepare_dataset(spec, tmp_path, 2)
    assert not (folder / SPLIT_FILE).exists()


def test_prepare_again_selects_from_the_files_not_the_old_split(tmp_path) -> None:
    from vwbench.data.prepare import prepare_dataset

    spec, folder = _coco_spec(tmp_path, train_n=2, val_n=1)
    path, first = prepare_dataset(spec, tmp_path, 2)
    fx.image(first.train[0].path, 200)  # a file replaced after the first prepare
    _, second = prepare_dataset(spec, tmp_path, 2)
    assert second.manifest.hash != first.manifest.hash
    assert json.loads(path.read_text())["manifest"]["hash"] == second.manifest.hash


def test_a_prepared_split_of_other_options_is_not_reused(tmp_path) -> None:
    spec, folder = _coco_spec(tmp_path, train_n=3, val_n=1)
    split = load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    (folder / SPLIT_FILE).write_text(json.dumps(split_payload(spec, split, 2)))
    assert dict(split.manifest.extra)["seed"] == "0"
    reseeded = spec.model_copy(update={"options": {**spec.options, "seed": 1}})
    assert dict(load_coco_dataset(reseeded, images_per_concept=2, data_root=tmp_path).manifest.extra)["seed"] == "1"


# ---- smaller checks: annotation ids, pixels, decoded sizes ------------------------------------------


def test_check_instances_refuses_a_repeated_annotation_id() -> None:
    from vwbench.data.coco_format import check_instances

    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "dog"}],
            "annotations": [{"id": 5, "image_id": 1}, {"id": "5", "image_id": 1}]}
    with pytest.raises(DataError, match=r"f.json: duplicate annotation id '5' \(annotations\[1\]\)"):
        check_instances(data, "f.json")


def test_to_rgb_refuses_32_bit_pixels_beyond_16_bits() -> None:
    import numpy as np

    from vwbench.data.base import to_rgb

    wide = Image.fromarray(np.array([[70000, 0]], dtype=np.int32))  # mode "I"; 70000 >> 8 = 273 would wrap to 17
    assert wide.mode == "I"
    with pytest.raises(ValueError, match="pixels outside 0..65535"):
        to_rgb(wide)


def test_load_image_gives_rgb_whatever_the_loader_returns() -> None:
    ex = Example("a", 4, 3, [_ann((0, 0, 2, 2), "cat")], loader=lambda: Image.new("L", (4, 3), 9))
    image = ex.load_image()
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (9, 9, 9)


def test_validate_decodes_each_file_and_compares_its_size(tmp_path) -> None:
    ex = _of("cat", "t0")
    ex.path, ex.loader = tmp_path / "a.png", lambda: Image.new("RGB", (40, 31))  # the annotations say 40 x 30
    split = _split([ex], [_of("cat", "h0")], concepts=("cat",))
    split.validate(1, check_files=False)
    with pytest.raises(DataError, match="the file is 40x31 pixels, its annotations say 40x30"):
        split.validate(1)


@pytest.mark.parametrize("corners", [(40.2, 5, 40.9, 10), (-0.9, 5, -0.1, 10), (5, 30.3, 9, 30.8)])
def test_a_box_wholly_in_the_tolerance_band_past_the_border_is_refused(corners):
    """Inside the 1 px rounding band but outside the 40x30 image: nothing of it is in the image, so
    it has no area once cut (it came back with a negative width, and validate() then blamed the image)."""
    from vwbench.data.real import checked_box
    from vwbench.errors import DataError

    with pytest.raises(DataError, match=r"ann\.json: annotation 7 has a box .* no area inside its 40x30 image"):
        checked_box("ann.json", "annotation 7", *corners, 40, 30)
