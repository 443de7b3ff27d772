"""A leaderboard ranks one task's results by one metric: results of one task scored by different
metrics (a tier on ``map50`` beside one on ``map``) are a one-line error, not a mixed ranking."""

from __future__ import annotations

import importlib

import pytest

from vwbench.errors import UserError

from .test_rank_arithmetic import entry


def _collect(tmp_path, monkeypatch, results):
    collect_module = importlib.import_module("vwbench.leaderboard.collect")
    for name, r in results.items():
        r.fracture, r.per_concept = None, {}
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(collect_module, "_read", lambda path: results[path.name])
    return collect_module.collect(tmp_path)


@pytest.mark.parametrize("transfer_b", ["ridge", "lstsq"])  # another method, or another run of the same one
def test_results_of_one_task_under_two_metrics_are_refused(tmp_path, monkeypatch, transfer_b) -> None:
    a, b = entry("clip->owlv2", "lstsq", 0.30).result, entry("clip->owlv2", transfer_b, 0.55).result
    a.metric, b.metric = "map", "map50"
    with pytest.raises(UserError) as caught:
        _collect(tmp_path, monkeypatch, {"a.json": a, "b.json": b})
    message = str(caught.value)
    assert "clip->owlv2 on d holds results scored by different metrics: map (a.json), map50 (b.json)" in message
    assert message.endswith("move one kind to another folder") and "\n" not in message


def test_other_tasks_may_use_other_metrics(tmp_path, monkeypatch) -> None:
    a, b = entry("clip->owlv2", "lstsq", 0.30).result, entry("owlv2->clip", "lstsq", 0.55).result
    a.metric, b.metric = "map", "classification_accuracy"
    collected = _collect(tmp_path, monkeypatch, {"a.json": a, "b.json": b})
    assert sorted(e.file for e in collected.entries) == ["a.json", "b.json"]
