"""Metric behaviour that a mutation-testing round found unpinned: COCO's float64 IoU thresholds
on an IoU that hits one exactly, refusing scores that cover fewer images than the boxes, each
``METRICS`` entry computing the metric of its name, flat empty tensors, and ``max_detections``
(whose caps below 10 are not honoured today: that test fails, see its docstring)."""

from __future__ import annotations

import pytest
import torch

from tests.metrics.test_detection import coco_reference, make
from vwbench.metrics import BACKENDS, METRICS, detection_map, detection_map_50, detection_map_50_95, score
from vwbench.predictions import BoxPredictions, LabelPredictions

GT = [0.0, 0.0, 100.0, 100.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_iou_exactly_on_a_threshold_is_a_hit_with_cocos_float64_thresholds(backend: str) -> None:
    """IoU 5500 / 10000 = 0.55 exactly: a hit at IoU .50 and .55 for COCO (whose 0.55 is the
    float64 0.55), a miss at .55 with a float32 threshold (0.550000011920929): AP 0.2, not 0.1."""
    p = make([([[0.0, 0.0, 100.0, 55.0]], [0.9], [GT])])
    got = detection_map(p, backend)
    assert got == pytest.approx({"map": 0.2, "map50": 1.0}, abs=1e-12)
    ref_map, ref_map50 = coco_reference(p)
    assert got["map"] == pytest.approx(ref_map, abs=1e-12) and got["map50"] == pytest.approx(ref_map50, abs=1e-12)


def test_scores_for_fewer_images_than_boxes_are_refused() -> None:
    """Pairing images by position would otherwise drop the images past the shortest list."""
    p = make([([GT], [0.9], [GT]), ([GT], [0.8], [GT])])
    with pytest.raises(ValueError, match=r"cover 2 images \(boxes\), 1 \(scores\) and 2 \(ground truth\)"):
        detection_map(BoxPredictions("dog", p.boxes, p.scores[:1], p.gt_boxes))


def test_each_metric_spec_computes_the_metric_it_names() -> None:
    """``METRICS[name].compute`` is what a registry task's metric name means: on detections whose
    AP@.5 (1.0) and AP@[.5:.95] (0.7) differ, ``map50`` is the former and ``map`` the latter."""
    shifted = make([([[20.0, 10.0, 120.0, 110.0]], [0.9], [[10.0, 10.0, 110.0, 110.0]])])  # IoU 0.818
    assert METRICS["map50"].compute(shifted) == pytest.approx(1.0, abs=1e-12)
    assert METRICS["map"].compute(shifted) == pytest.approx(0.7, abs=1e-12)
    assert detection_map_50(shifted) == score(shifted)["map50"]
    assert detection_map_50_95(shifted) == score(shifted)["map"]
    labels = LabelPredictions("dog", ["dog", "cat", "dog", "dog"], ["dog", "cat", "cat", "cat"])
    assert METRICS["generation_accuracy"].compute(labels) == score(labels, "generation")["generation_accuracy"] == 0.75
    assert METRICS["classification_accuracy"].compute(labels) == score(labels, "classification")["classification_accuracy"]
    assert score(labels, "classification")["classification_accuracy"] == pytest.approx(0.5 * (1.0 + 1 / 3))


def test_images_without_boxes_may_come_as_flat_empty_tensors() -> None:
    """An adapter that found nothing may return ``torch.zeros(0)`` (shape ``[0]``) for boxes,
    scores and ground truth: that is an empty ``[0, 4]``, scored like it."""
    flat = BoxPredictions("dog", [torch.tensor([GT]), torch.zeros(0)], [torch.tensor([0.9]), torch.zeros(0)],
                          [torch.tensor([GT]), torch.zeros(0)])
    shaped = make([([GT], [0.9], [GT]), ([], [], [])])
    assert detection_map(flat) == detection_map(shaped) == pytest.approx({"map": 1.0, "map50": 1.0})


def _objects(n: int) -> list[list[float]]:
    return [[60.0 * i, 0.0, 60.0 * i + 50.0, 50.0] for i in range(n)]  # disjoint 50x50 boxes


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_detections_caps_the_detections_scored_per_image(backend: str) -> None:
    """Twelve objects, twelve perfect detections: with a cap of 11 only the 11 highest-scoring
    count (recall 11/12: 92 of 101 recall thresholds at precision 1)."""
    boxes = _objects(12)
    p = make([(boxes, [1.0 - 0.01 * i for i in range(12)], boxes)])
    assert detection_map(p, backend) == pytest.approx({"map": 1.0, "map50": 1.0})
    assert detection_map(p, backend, max_detections=11) == pytest.approx({"map": 92 / 101, "map50": 92 / 101})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cap_below_ten_detections_per_image_is_honoured(backend: str) -> None:
    """COCOeval sorts ``maxDets``: with ``[1, 10, max_detections]`` a cap below 10 put 10 last,
    and ``precision[..., -1]`` was AP at 10 detections, not at the cap. Two objects, two perfect
    detections, cap 1: only the top one counts (recall 1/2: 51 of 101 recall thresholds at
    precision 1), where both were scored (AP 1.0)."""
    boxes = _objects(2)
    p = make([(boxes, [0.9, 0.8], boxes)])
    assert detection_map(p, backend, max_detections=1) == pytest.approx({"map": 51 / 101, "map50": 51 / 101})


@pytest.mark.parametrize("cap", [0, -1, 2.5, True])
def test_a_detection_cap_that_is_no_positive_whole_number_is_refused(cap) -> None:
    boxes = _objects(1)
    with pytest.raises(ValueError, match="max_detections must be a whole number of at least 1"):
        detection_map(make([(boxes, [0.9], boxes)]), max_detections=cap)
