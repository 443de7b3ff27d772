"""Generation and classification accuracy, the score() dispatch and the METRICS table."""

from __future__ import annotations

import pytest

from vwbench.errors import UserError
from vwbench.metrics import (
    METRICS,
    classification_accuracy,
    generation_accuracy,
    get_metric,
    metrics_for,
    score,
)
from vwbench.predictions import LabelPredictions


def test_generation_accuracy_is_share_labelled_target() -> None:
    p = LabelPredictions("dog", ["dog", "cat", "dog", "dog", "cup"], ["dog"] * 5)
    assert generation_accuracy(p) == pytest.approx(3 / 5)
    assert generation_accuracy(LabelPredictions("dog", ["dog"] * 4, ["dog"] * 4)) == 1.0
    assert generation_accuracy(LabelPredictions("dog", ["cat"] * 4, ["dog"] * 4)) == 0.0


def test_generation_accuracy_empty_raises() -> None:
    with pytest.raises(ValueError, match="no generated images"):
        generation_accuracy(LabelPredictions("dog", [], []))


def test_classification_accuracy_is_balanced() -> None:
    # 2 target images: 1 labelled dog -> TPR 1/2.
    # 8 others: 6 labelled something other than dog (a wrong other concept still counts) -> TNR 6/8.
    actual = ["dog", "dog"] + ["cat", "cat", "cup", "cup", "bear", "bear", "remote", "remote"]
    predicted = ["dog", "cat"] + ["cat", "dog", "bear", "cup", "bear", "dog", "cup", "remote"]
    p = LabelPredictions("dog", predicted, actual)
    assert classification_accuracy(p) == pytest.approx(0.5 * (1 / 2 + 6 / 8))  # 0.625


def test_classification_never_firing_scores_half() -> None:
    actual = ["dog"] + ["cat"] * 9
    p = LabelPredictions("dog", ["cat"] * 10, actual)
    assert classification_accuracy(p) == pytest.approx(0.5)  # plain accuracy would say 0.9


def test_classification_one_side_empty_uses_other() -> None:
    only_pos = LabelPredictions("dog", ["dog", "dog", "cat", "dog"], ["dog"] * 4)
    assert classification_accuracy(only_pos) == pytest.approx(3 / 4)
    only_neg = LabelPredictions("dog", ["dog", "cat", "cup"], ["cat", "cat", "cup"])
    assert classification_accuracy(only_neg) == pytest.approx(2 / 3)


def test_classification_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="no images"):
        classification_accuracy(LabelPredictions("dog", [], []))
    with pytest.raises(ValueError, match="2 labels but 1 true"):
        classification_accuracy(LabelPredictions("dog", ["dog", "cat"], ["dog"]))


def test_score_dispatch_labels() -> None:
    p = LabelPredictions("dog", ["dog", "cat", "cat", "cat"], ["dog", "dog", "cat", "cat"])
    assert score(p, "generation") == {"generation_accuracy": pytest.approx(0.25)}
    assert score(p, kind="classification") == {"classification_accuracy": pytest.approx(0.75)}
    with pytest.raises(ValueError, match="kind"):
        score(p)
    with pytest.raises(ValueError, match="kind"):
        score(p, "detection")
    with pytest.raises(TypeError):
        score(["dog"], "generation")


def test_metrics_table() -> None:
    assert set(METRICS) == {"generation_accuracy", "classification_accuracy", "map", "map50"}
    kind, compute, higher = METRICS["classification_accuracy"]
    assert (kind, compute, higher) == ("classification", classification_accuracy, True)
    assert all(spec.higher_is_better for spec in METRICS.values())
    assert metrics_for("detection") == ["map", "map50"]
    assert metrics_for("generation") == ["generation_accuracy"]
    # each metric's callable gives the value score() reports for that name
    p = LabelPredictions("dog", ["dog", "cat"], ["dog", "dog"])
    for name in metrics_for("generation") + metrics_for("classification"):
        assert METRICS[name].compute(p) == score(p, METRICS[name].kind)[name]
    assert METRICS["map"].compute.__doc__ and METRICS["map50"].kind == "detection"


def test_get_metric_validates_names() -> None:
    assert get_metric("map50").kind == "detection"
    with pytest.raises(UserError, match="did you mean 'map50'"):
        get_metric("map_50")
    with pytest.raises(UserError, match="generation_accuracy"):
        get_metric("map", kind="generation")
