"""Mutation round 11 pins on the bench report and the paper projection: the boundaries of number
formatting, the projection's refusals and fall-backs (missing sections, a NaN step time, no
words, no images, an empty eval record), its device label without a recorded device or thread
count, which files beside a report count as its companions, `--render` without stored results,
and the smaller report lines (compiled sections, a float tolerance, thread defaults, the load
average)."""

from __future__ import annotations

import json

import pytest

from vwbench.errors import UserError
from vwbench.perf import report
from vwbench.perf.project import costs_from_results, device_label, project, seconds_per_word_step
from vwbench.perf.report import _num, _training_md, companion_reports, render_markdown, rerender_report

from .test_perf_pins import cost_results, results_of, training_section

# ------------------------------------------------------------------ number formatting


def test_num_switches_notation_exactly_at_1e5_and_decimals_exactly_at_100() -> None:
    assert _num(1e5) == "1e+05"  # 1e5 and over: significant digits
    assert _num(100.0) == "100.0"  # 100 and over: one decimal
    assert _num(99.5) == "99.500"


# ------------------------------------------------------------------ projection


def test_projection_names_every_missing_training_section() -> None:
    results = cost_results()
    del results["sections"]["classification"], results["sections"]["generation"]
    with pytest.raises(UserError, match=r"^the projection needs the training costs of all three families; these results lack generation, classification: run"):
        costs_from_results(results)


def test_a_nan_step_time_is_refused() -> None:
    with pytest.raises(UserError, match="^the generation section of these bench results has no positive cost per word-step"):
        costs_from_results(cost_results(median=float("nan")))


def test_a_run_without_a_word_count_is_priced_at_the_steps_only_rate() -> None:
    assert seconds_per_word_step({"steps": 10, "median_step_seconds": 1.0, "steady_word_steps_per_s": 4.0}) == 0.25
    assert seconds_per_word_step({"words": 0, "steps": 10, "median_step_seconds": 1.0, "steady_word_steps_per_s": 4.0}) == 0.25


def test_a_section_without_images_costs_nothing_to_prepare() -> None:
    results = cost_results()
    results["sections"]["detection"]["vwbench"]["facts"]["concepts"] = 0
    assert costs_from_results(results)["owlv2"]["prepare_seconds_per_image"] == 0.0


def test_device_label_without_a_recorded_device_or_thread_count_is_a_cpu_with_default_threads() -> None:
    results = cost_results()
    results["machine"], results["options"] = {"cpu_model": "Test CPU"}, {}
    label, on_gpu = device_label(results)
    assert on_gpu is False
    assert label.startswith("CPU Test CPU, default torch thread(s) per process, models ")


# ------------------------------------------------------------------ companions


def test_only_stem_dash_files_beside_a_report_are_its_companions(tmp_path) -> None:
    stored = json.dumps(results_of({"classification": training_section()}))
    for name in ("perf.json", "perf-gpu.json", "perfold.json", "other-gpu.json"):
        (tmp_path / name).write_text(stored)
    assert [name for name, _ in companion_reports(tmp_path / "perf.md")] == ["perf-gpu.md"]


# ------------------------------------------------------------------ report lines


def test_a_compiled_section_says_so_and_a_float_tolerance_is_shown_short() -> None:
    section = training_section()
    section["facts"] = {**section["facts"], "compiled": ["unet", "text_encoder"]}
    section["check"] = {**section["check"], "tolerance": 2.0}
    lines = _training_md(section)
    assert "vwbench's side ran with `torch.compile` on unet, text_encoder (the reference did not); " \
           "the first steps, and so the whole-run rate, include the compilation." in lines
    assert any("(tolerance 2): **ok**." in line for line in lines)
    assert not any("torch.compile" in line for line in _training_md(training_section()))


def test_report_without_a_thread_count_says_torch_default() -> None:
    results = results_of({"classification": training_section()})
    results["options"]["threads"] = None
    assert "- torch threads per process: torch default; device cpu, fp32" in render_markdown(results).splitlines()


def test_machine_load_average_is_rounded_to_two_decimals(monkeypatch) -> None:
    monkeypatch.setattr(report.os, "getloadavg", lambda: (1.23456, 0.5, 2.0))
    assert report.machine_info("cpu")["load_average"] == [1.23, 0.5, 2.0]


def test_render_without_stored_results_names_the_option(tmp_path) -> None:
    with pytest.raises(UserError, match=r"^--render: no stored bench results at .*perf\.json; measure first with `vwbench bench --out "):
        rerender_report(tmp_path / "perf.md")


def test_an_empty_eval_record_adds_no_evaluation_row() -> None:
    results = cost_results()
    results["sections"]["detection"]["vwbench"]["eval"] = {}
    stages = [row["stage"] for row in project(results)["sections"]["section4"]["rows"]]
    assert [s for s in stages if s.startswith("evaluate")] == ["evaluate on sd"]
