"""Mutation-testing round 12: a dataset of one's own in a real layout. The "labels there" hint is
given only for a concept no image is labelled with (and lists at most 30 labels), and VOC's
reader takes the keys of the dataset's `options.names` as classes."""

from __future__ import annotations

import pytest

from tests.data import fixtures_real as fx
from vwbench.data.coco import load_coco_dataset
from vwbench.data.voc import load_voc_dataset
from vwbench.errors import DataError


def test_a_concept_with_too_few_images_gets_no_labels_hint(tmp_path) -> None:
    """`circle` labels 2 images where 3 are required: it is spelt right, so no list of labels."""
    spec = fx.shipped_spec_with("coco", ["circle", "square"])
    fx.write_coco(tmp_path / "coco", ["circle", "square"], train_n=2, val_n=1)
    with pytest.raises(DataError) as info:
        load_coco_dataset(spec, images_per_concept=3, data_root=tmp_path)
    message = str(info.value)
    assert "concept 'circle' labels 2 training image(s) (class of the largest box), 3 are required" in message
    assert "labels there" not in message and "no image's largest box" not in message


def test_the_labels_hint_names_at_most_30_labels(tmp_path) -> None:
    labels = [f"shape{i:02d}" for i in range(33)]  # with the fixture's `person` distractor never largest
    spec = fx.shipped_spec_with("coco", ["circle"])
    fx.write_coco(tmp_path / "coco", labels, train_n=1, val_n=1)
    with pytest.raises(DataError) as info:
        load_coco_dataset(spec, images_per_concept=1, data_root=tmp_path)
    message = str(info.value)
    shown = ", ".join(labels[:30])
    assert f"(labels there: {shown} and 3 more)" in message
    assert "shape30" not in message


def test_a_voc_layout_dataset_may_use_the_keys_of_its_names_as_classes(tmp_path) -> None:
    """`options.names: {circ: circle}`: the annotations say `circ`, the concept is `circle`."""
    spec = fx.shipped_spec_with("voc", ["circle", "square"], options={"subdir": "voc", "label_rule": "largest_box", "names": {"circ": "circle"}})
    fx.write_voc(tmp_path / "voc", ["circ", "square"], train_n=2, val_n=1)
    split = load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)
    assert sorted({e.concept for e in split.train}) == ["circle", "square"]
    assert len(split.train_of("circle")) == 2


def test_annotations_with_no_boxes_at_all_say_none(tmp_path) -> None:
    spec = fx.shipped_spec_with("coco", ["circle"])
    fx.write_coco(tmp_path / "coco", [], train_n=1, val_n=1)  # the files are there, with no image annotated
    with pytest.raises(DataError) as info:
        load_coco_dataset(spec, images_per_concept=1, data_root=tmp_path)
    assert "no image's largest box is labelled 'circle' (labels there: none): name the concept as its category is named" in str(info.value)
