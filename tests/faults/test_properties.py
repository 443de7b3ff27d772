"""Property-based tests (hypothesis) of the readers bad data meets first: the results schema
reader, the COCO annotation reader with its shared structural checks, and the split validation
every loader's output passes. The property is always the same: valid input reads back exactly,
and any other input is a one-line :class:`UserError`/:class:`DataError`, never another exception
and never a silently wrong value."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vwbench.data.base import Annotation, BOX_TOLERANCE, Example, check_example
from vwbench.data.coco_format import check_instances, to_coco
from vwbench.errors import DataError, UserError
from vwbench.results.atomic import atomic_write_bytes, atomic_write_json
from vwbench.results.schema import RunResult, read_result

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
names = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)
unit = st.floats(0.0, 1.0, allow_nan=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


# ---- results schema ------------------------------------------------------------------------------


@st.composite
def run_results(draw) -> RunResult:
    concepts = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    low, high = sorted((draw(unit), draw(unit)))
    per_word = [{"concept": c, "trial": t, "init_word": c, "map": draw(unit)} for c in concepts for t in range(draw(st.integers(1, 2)))]
    return RunResult.model_validate(dict(
        task="sd->owlv2", source="sd", target="owlv2", dataset=draw(names), metric="map", value=draw(unit), ci95=(low, high),
        per_concept={c: draw(unit) for c in concepts}, per_word=per_word, metrics={"map50": draw(unit)},
        transfer=draw(st.sampled_from(["lstsq", "identity"])), n_trials=draw(st.integers(1, 10)), steps=draw(st.integers(0, 2000)),
        seed=draw(st.integers(0, 2**31)),
        provenance=dict(vwbench_version="0.1.0", git_commit=draw(st.none() | names), task_version=1, checkpoints=[],
                        dataset_manifest_hash="x" * 64, versions={"torch": "2"}, device="cpu", dtype="float32",
                        wall_time_s={"train": draw(st.floats(0, 1e4))}, created="2026-01-01T00:00:00+00:00"),
    ))


@SETTINGS
@given(result=run_results())
def test_a_written_result_reads_back_exactly(tmp_path, result):
    path = tmp_path / "r.json"
    atomic_write_json(path, result.model_dump(mode="json"))
    assert read_result(path) == result


@SETTINGS
@given(result=run_results(), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_a_truncated_result_is_refused(tmp_path, result, cut):
    path = tmp_path / "r.json"
    text = json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True)
    atomic_write_bytes(path, text[: int(len(text) * cut)].encode())
    with pytest.raises(UserError):
        read_result(path)


@SETTINGS
@given(data=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_are_a_user_error_never_a_crash(tmp_path, data):
    path = tmp_path / "r.json"
    path.write_bytes(data)
    with pytest.raises(UserError):
        read_result(path)


@SETTINGS
@given(result=run_results(), field=st.sampled_from(["value", "ci95", "per_concept", "per_word", "provenance", "n_trials", "task"]), junk=json_values)
def test_a_result_with_a_field_replaced_is_refused_or_still_valid(tmp_path, result, field, junk):
    payload = result.model_dump(mode="json")
    payload[field] = junk
    path = tmp_path / "r.json"
    atomic_write_json(path, payload)
    try:
        back = read_result(path)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert RunResult.model_validate(payload) == back  # accepted only when the schema accepts it


# ---- COCO annotations ----------------------------------------------------------------------------


@st.composite
def coco_examples(draw) -> list[Example]:
    examples = []
    for i in range(draw(st.integers(1, 4))):
        width, height = draw(st.integers(4, 64)), draw(st.integers(4, 64))
        boxes = []
        for _ in range(draw(st.integers(1, 3))):
            x, y = draw(st.integers(0, width - 2)), draw(st.integers(0, height - 2))
            w, h = draw(st.integers(1, width - x)), draw(st.integers(1, height - y))
            boxes.append(Annotation((float(x), float(y), float(w), float(h)), draw(st.sampled_from(["circle", "square", "ring"]))))
        examples.append(Example(f"img{i}", width, height, boxes, loader=lambda: None))
    return examples


def _read(tmp_path: Path, payload) -> list:
    from vwbench.data.coco import read_instances

    path = tmp_path / "instances.json"
    path.write_text(json.dumps(payload))
    check_instances(payload, path)
    return read_instances(path, "images")


@SETTINGS
@given(examples=coco_examples())
def test_valid_coco_annotations_read_back_exactly(tmp_path, examples):
    records = _read(tmp_path, to_coco(examples))
    assert [(r.width, r.height) for r in records] == [(e.width, e.height) for e in examples]
    for record, example in zip(records, examples):
        assert [(a.bbox, a.category) for a in record.annotations] == [(a.bbox, a.category) for a in example.annotations]
        assert record.label == example.concept


BAD_BOXES = st.one_of(
    st.tuples(st.floats(-100, -2), st.just(0.0), st.just(2.0), st.just(2.0)),  # negative x, beyond the tolerance
    st.tuples(st.just(0.0), st.just(0.0), st.floats(-5, 0), st.floats(1, 3)),  # zero or negative width
    st.tuples(st.just(0.0), st.just(0.0), st.floats(1, 3), st.floats(-5, 0)),  # zero or negative height
    st.tuples(st.just(1.0), st.just(1.0), st.floats(200, 1e6), st.just(1.0)),  # past the right edge
    st.tuples(st.just(math.nan), st.just(0.0), st.just(1.0), st.just(1.0)),
)


@SETTINGS
@given(examples=coco_examples(), bad=BAD_BOXES, which=st.integers(0, 100))
def test_an_impossible_box_is_a_data_error_naming_the_file(tmp_path, examples, bad, which):
    payload = to_coco(examples)
    ann = payload["annotations"][which % len(payload["annotations"])]
    ann["bbox"] = list(bad)
    with pytest.raises(DataError, match="instances.json"):
        _read(tmp_path, payload)


@SETTINGS
@given(examples=coco_examples(), key=st.sampled_from(["images", "categories", "annotations"]))
def test_duplicate_ids_are_a_data_error(tmp_path, examples, key):
    payload = to_coco(examples)
    entries = payload[key]
    entries.append(dict(entries[0]))
    with pytest.raises(DataError, match="duplicate"):
        check_instances(payload, tmp_path / "instances.json")


@SETTINGS
@given(examples=coco_examples(), which=st.integers(0, 100), bad_id=st.integers(100, 10**6))
def test_an_unknown_category_is_a_data_error(tmp_path, examples, which, bad_id):
    payload = to_coco(examples)
    payload["annotations"][which % len(payload["annotations"])]["category_id"] = bad_id
    with pytest.raises(DataError, match="unknown category"):
        _read(tmp_path, payload)


@SETTINGS
@given(payload=json_values)
def test_arbitrary_json_is_read_or_refused_never_a_crash(tmp_path, payload):
    try:
        _read(tmp_path, payload)
    except DataError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(examples=coco_examples(), path=st.sampled_from(["images", "annotations", "categories"]), field=names, junk=json_values, which=st.integers(0, 100))
def test_a_coco_entry_with_junk_in_a_field_is_read_or_refused(tmp_path, examples, path, field, junk, which):
    payload = to_coco(examples)
    entries = payload[path]
    entry = entries[which % len(entries)]
    entry[field if which % 2 else sorted(entry)[which % len(entry)]] = junk
    try:
        _read(tmp_path, payload)
    except DataError as exc:
        assert "\n" not in str(exc)


# ---- the split check every loader's output passes ------------------------------------------------


@SETTINGS
@given(width=st.integers(1, 64), height=st.integers(1, 64),
       box=st.tuples(*[st.floats(-80, 80) | st.sampled_from([math.nan, math.inf, -math.inf])] * 4))
def test_check_example_accepts_exactly_the_boxes_inside_the_image(width, height, box):
    x, y, w, h = box
    inside = (all(math.isfinite(v) for v in box) and w > 0 and h > 0 and x >= -BOX_TOLERANCE and y >= -BOX_TOLERANCE
              and x + w <= width + BOX_TOLERANCE and y + h <= height + BOX_TOLERANCE)
    example = Example("img", width, height, [Annotation(box, "circle")], loader=lambda: None)
    if inside:
        check_example("d", example)
    else:
        with pytest.raises(DataError, match="box 0"):
            check_example("d", example)
