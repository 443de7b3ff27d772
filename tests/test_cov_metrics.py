"""The metric registry's detection entries and the summary's guards: a task's metric name maps to
the number a run stores (README "Metrics": detection mAP@[.5:.95] and mAP@.5), and intervals are
refused for inputs they cannot describe."""

from __future__ import annotations

import math

import pytest
import torch

from vwbench.metrics import METRICS, detection_map, get_metric, metrics_for, score, summarize, t_interval
from vwbench.metrics.summary import bootstrap_ci
from vwbench.predictions import BoxPredictions, LabelPredictions


def _boxes() -> BoxPredictions:
    gt = [torch.tensor([[10.0, 10.0, 50.0, 50.0]]), torch.tensor([[0.0, 0.0, 20.0, 30.0]]), torch.zeros(0, 4)]
    boxes = [torch.tensor([[12.0, 11.0, 50.0, 52.0], [60.0, 60.0, 70.0, 70.0]]), torch.tensor([[0.0, 0.0, 20.0, 15.0]]), torch.tensor([[5.0, 5.0, 9.0, 9.0]])]
    scores = [torch.tensor([0.9, 0.3]), torch.tensor([0.8]), torch.tensor([0.4])]
    return BoxPredictions("dog", boxes, scores, gt)


def test_the_map_metrics_a_task_names_are_the_values_detection_map_gives() -> None:
    p = _boxes()
    full = detection_map(p)
    assert METRICS["map"].compute(p) == full["map"] and METRICS["map50"].compute(p) == full["map50"]
    assert score(p) == full and score(p, "detection") == full
    assert 0.0 < full["map"] < full["map50"] <= 1.0  # one loose box counts at .5 but not at every threshold
    assert metrics_for("detection") == ["map", "map50"] and get_metric("map50", "detection").higher_is_better


def test_a_perfect_detection_scores_one_at_every_threshold() -> None:
    gt = [torch.tensor([[10.0, 10.0, 50.0, 50.0]])]
    p = BoxPredictions("dog", [gt[0].clone()], [torch.tensor([0.99])], gt)
    assert METRICS["map"].compute(p) == pytest.approx(1.0) and METRICS["map50"].compute(p) == pytest.approx(1.0)


def test_predictions_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="BoxPredictions are detection predictions, got kind='generation'"):
        score(_boxes(), "generation")
    labels = LabelPredictions("dog", ["dog", "cat"], ["dog", "dog"])
    with pytest.raises(ValueError, match="LabelPredictions need kind='generation' or kind='classification'"):
        score(labels)
    with pytest.raises(TypeError, match="no metric scores predictions of type list"):
        score([1, 2, 3])


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0, -0.5])
def test_an_interval_needs_a_confidence_fraction(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence is a fraction in \\(0, 1\\)"):
        t_interval([0.1, 0.2, 0.3], confidence)


def test_summaries_refuse_values_they_cannot_describe() -> None:
    with pytest.raises(ValueError, match="cannot summarize a metric without values"):
        summarize({})
    with pytest.raises(ValueError, match="concept 'cat' has no values to summarize"):
        summarize({"dog": [0.5], "cat": []})
    with pytest.raises(ValueError, match=r"non-finite metric values for concepts \['cat'\]"):
        summarize({"dog": [0.5, 0.6], "cat": [math.nan]})
    with pytest.raises(ValueError, match="cannot compute an interval of no values"):
        t_interval([])
    one = summarize({"dog": [0.25]})
    assert one.ci95 == (0.25, 0.25) and one.half_width == 0.0 and one.to_dict()["ci95"] == [0.25, 0.25]


def test_bootstrap_interval_is_seeded_and_refuses_bad_input() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.6]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    low, high = bootstrap_ci(values, seed=3)
    assert min(values) <= low <= sum(values) / len(values) <= high <= max(values)
    for bad, message in (([], "no values"), ([0.1, math.inf], "non-finite"),):
        with pytest.raises(ValueError, match=message):
            bootstrap_ci(bad)
    with pytest.raises(ValueError, match="n_resamples must be positive, got 0"):
        bootstrap_ci(values, n_resamples=0)
