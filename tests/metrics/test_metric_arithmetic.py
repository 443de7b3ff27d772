"""Metric arithmetic the other metric tests leave open: the result's CI clamp to [0, 1] and the
secondary metrics' mean (``pipeline_steps.score_words``), the bootstrap's percentiles, inverted
ground-truth boxes in y, and generation accuracy's denominator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vwbench.metrics import bootstrap_ci, detection_map, generation_accuracy, summarize
from vwbench.pipeline_steps import score_words
from vwbench.predictions import BoxPredictions, LabelPredictions


def _words(concepts: list[str]) -> SimpleNamespace:
    trials = [concepts[:i].count(c) for i, c in enumerate(concepts)]
    return SimpleNamespace(concepts=concepts, trials=trials, init_words=list(concepts))


def test_score_words_clamps_the_interval_to_the_unit_range() -> None:
    # accuracies 0, 0 and 0.9 of one concept: the t-interval is about [-0.99, 1.59]
    predictions = [
        LabelPredictions("dog", ["cat"] * 10, ["dog"] * 10),
        LabelPredictions("dog", ["cat"] * 10, ["dog"] * 10),
        LabelPredictions("dog", ["dog"] * 9 + ["cat"], ["dog"] * 10),
    ]
    task = SimpleNamespace(name="sd->clip", metric="generation_accuracy")
    scored = score_words(predictions, _words(["dog"] * 3), task, "generation")
    raw = summarize({"dog": [0.0, 0.0, 0.9]}).ci95
    assert raw[0] < 0 and raw[1] > 1  # the fixture does leave the range
    summary = scored["summary"]
    assert summary.ci95 == (0.0, 1.0)
    assert summary.value == pytest.approx(0.3) and summary.n == 3
    assert [w["generation_accuracy"] for w in scored["per_word"]] == pytest.approx([0.0, 0.0, 0.9])
    # an interval inside the range is left as it is
    inside = score_words(predictions[2:] * 2, _words(["dog"] * 2), task, "generation")["summary"]
    assert inside.ci95 == (pytest.approx(0.9), pytest.approx(0.9))


A = [10.0, 10.0, 110.0, 110.0]
B = [300.0, 300.0, 350.0, 400.0]


def _boxes(images) -> BoxPredictions:
    return BoxPredictions(
        target="dog",
        boxes=[torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b, _, _ in images],
        scores=[torch.tensor(s, dtype=torch.float32) for _, s, _ in images],
        gt_boxes=[torch.tensor(g, dtype=torch.float32).reshape(-1, 4) for _, _, g in images],
    )


def test_score_words_secondary_metrics_are_means_over_words() -> None:
    shifted = _boxes([([[20.0, 10.0, 120.0, 110.0]], [0.9], [A])])  # map 0.7, map50 1.0
    fp_first = _boxes([([B, A], [0.9, 0.8], [A])])  # map 0.5, map50 0.5
    task = SimpleNamespace(name="owlv2->owlv2", metric="map")
    scored = score_words([shifted, fp_first], _words(["dog", "dog"]), task, "detection")
    assert scored["summary"].value == pytest.approx(0.6)
    assert scored["secondary"] == {"map50": pytest.approx(0.75)}


def test_bootstrap_ci_is_the_percentiles_of_resampled_means() -> None:
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.05, 0.6, 0.9, 0.2])
    rng = np.random.default_rng(3)
    means = x[rng.integers(0, x.size, size=(500, x.size))].mean(axis=1)
    want = np.percentile(means, [2.5, 97.5])
    assert bootstrap_ci(x, n_resamples=500, seed=3) == (pytest.approx(want[0], abs=1e-12), pytest.approx(want[1], abs=1e-12))
    lo90, hi90 = bootstrap_ci(x, n_resamples=500, seed=3, confidence=0.9)
    assert (lo90, hi90) == (pytest.approx(np.percentile(means, 5), abs=1e-12), pytest.approx(np.percentile(means, 95), abs=1e-12))


def test_a_ground_truth_box_inverted_in_y_is_refused() -> None:
    with pytest.raises(ValueError, match="x2 < x1 or y2 < y1"):
        detection_map(_boxes([([A], [0.9], [[10.0, 110.0, 110.0, 10.0]])]))
    with pytest.raises(ValueError, match="x2 < x1 or y2 < y1"):
        detection_map(_boxes([([A], [0.9], [[110.0, 10.0, 10.0, 110.0]])]))


def test_generation_accuracy_counts_the_generated_images_only() -> None:
    """``actual`` is not consulted: the denominator is the number of generations."""
    assert generation_accuracy(LabelPredictions("dog", ["dog", "cat", "dog", "dog"], [])) == pytest.approx(0.75)
    assert generation_accuracy(LabelPredictions("dog", ["dog", "cat"], ["dog"] * 5)) == pytest.approx(0.5)


def test_summarize_cuts_its_interval_to_bounds_as_stored_results_do() -> None:
    """A hand-built pipeline (`summarize` on a notebook's values) got (-0.0563, 0.8446) where the
    stored result says (0.0, 0.8446): `bounds=(0.0, 1.0)` gives the stored interval."""
    summary = summarize({"circle": [0.4296], "square": [0.3587]}, bounds=(0.0, 1.0))
    assert summary.ci95[0] == 0.0 and summary.ci95[1] == pytest.approx(0.8446, abs=1e-4)
    assert summarize({"circle": [0.4296], "square": [0.3587]}).ci95[0] == pytest.approx(-0.0563, abs=1e-4)
