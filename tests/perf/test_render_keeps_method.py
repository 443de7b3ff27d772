"""A measured report stores each training section's method text, and `vwbench bench --render` shows
that text, not the one of the vwbench that renders (a GPU report measured with an older recipe
was re-described as the current one)."""

from __future__ import annotations

import json

from tests.perf.test_perf_pins import results_of, training_section
from vwbench.perf import report


def test_render_shows_the_method_text_stored_at_measure_time(tmp_path, monkeypatch) -> None:
    out = tmp_path / "perf.md"
    report.write_report(results_of({"classification": training_section()}), out)
    measured_text = report._TRAINING_TEXT["classification"]
    stored = json.loads(out.with_suffix(".json").read_text())
    assert stored["sections"]["classification"]["method"] == measured_text
    monkeypatch.setitem(report._TRAINING_TEXT, "classification", "a newer recipe")
    report.rerender_report(out)
    text = out.read_text()
    assert measured_text in text and "a newer recipe" not in text


def test_render_of_a_report_stored_without_method_texts_uses_the_current_one(tmp_path, monkeypatch) -> None:
    out = tmp_path / "perf.md"
    out.with_suffix(".json").write_text(json.dumps(results_of({"classification": training_section()})))
    monkeypatch.setitem(report._TRAINING_TEXT, "classification", "the current recipe")
    report.rerender_report(out)
    assert "the current recipe" in out.read_text()
    assert "method" not in json.loads(out.with_suffix(".json").read_text())["sections"]["classification"]
