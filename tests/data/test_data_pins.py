"""Pins of the real-dataset arithmetic (mutation-testing round 5): the largest-box label, the
checks every split passes before training, box clipping and tolerance, and the seeded selection of
a shared pool. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from PIL import Image

from vwbench.data.base import Annotation, Concept, DatasetSplit, Example, Manifest, check_example, largest_box_label
from vwbench.data.real import Pools, Record, checked_box, select
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
    ((5, 21, 10, 10), "lies outside the 40x30 image"),  # bottom edge at 31.0 + 1: 32 > 30 + 1
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
