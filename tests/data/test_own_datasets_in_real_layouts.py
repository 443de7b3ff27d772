"""A dataset of one's own in COCO's or VOC's layout (a task author's walkthrough): VOC's reader
takes the dataset's own concept names as classes, and a concept no image is labelled with says
which labels the annotations use."""

from __future__ import annotations

import pytest

from tests.data import fixtures_real as fx
from vwbench.data.coco import load_coco_dataset
from vwbench.data.voc import load_voc_dataset
from vwbench.errors import DataError


def test_a_voc_layout_dataset_of_shapes_loads(tmp_path) -> None:
    spec = fx.shipped_spec_with("voc", ["circle", "square"])
    fx.write_voc(tmp_path / "voc", ["circle", "square"], train_n=2, val_n=1)  # with VOC's `person` as a small distractor
    split = load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)
    assert sorted({e.concept for e in split.train}) == ["circle", "square"]


def test_an_unknown_voc_class_says_how_to_use_ones_own(tmp_path) -> None:
    spec = fx.shipped_spec_with("voc", ["circle", "square"])
    fx.write_voc(tmp_path / "voc", ["circle", "hexagon"], train_n=2, val_n=1)
    with pytest.raises(DataError, match="is 'hexagon', not a PASCAL VOC class .* or, for a dataset of your own in VOC's layout, one of its concepts"):
        load_voc_dataset(spec, images_per_concept=2, data_root=tmp_path)


def test_a_concept_no_image_is_labelled_with_lists_the_labels_there(tmp_path) -> None:
    spec = fx.shipped_spec_with("coco", ["circle", "square"])
    fx.write_coco(tmp_path / "coco", ["circles", "square"], train_n=2, val_n=1)
    with pytest.raises(DataError) as info:
        load_coco_dataset(spec, images_per_concept=2, data_root=tmp_path)
    message = str(info.value)
    assert "concept 'circle' labels 0 training image(s)" in message
    assert "no image's largest box is labelled 'circle' (labels there: circles, square): name the concept as its category is named" in message
