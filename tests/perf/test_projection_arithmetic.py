"""The bench's arithmetic on hand-made costs: the paper projection's hours per stage and in total
(Section 5 at 4 deltas), the cost per word-step and per prepared image, and the report's derived
numbers (FLOPs per word-step, share of peak, ratio verdicts, passes per step, FLOP units, the
companion table's median-step rate)."""

from __future__ import annotations

import pytest

from vwbench.perf.project import costs_from_results, project, render_projection, seconds_per_word_step
from vwbench.perf.report import _companions_md, _flop, _passes, _per_word, _ratio, _share


def section(checkpoint: str, *, words: int, steps: int, median: float | None, steady: float, prepare: float, eval_: dict | None) -> dict:
    return {"vwbench": {
        "words": words, "steps": steps, "median_step_seconds": median, "steady_word_steps_per_s": steady, "seconds_prepare": prepare,
        "eval": eval_, "facts": {"concepts": 2, "images_per_concept": 4, "checkpoint": checkpoint, "batch_size": 8},
    }}


def results(device: str = "cpu") -> dict:
    return {
        "machine": {"device": device, "gpu": "H100", "cpu_model": "test cpu"},
        "options": {"dtype": "fp16" if device == "cuda" else "fp32", "threads": 2},
        "sections": {
            # 0.2 s median step over 4 words: 0.05 s per word-step; 8 s prepare over 2 x 4 images: 1 s per image
            "detection": section("owl-ck", words=4, steps=10, median=0.2, steady=99.0, prepare=8.0, eval_={"kind": "detection", "seconds_per_word": 2.0}),
            # 3 steps: too few for a median, priced at the whole run's rate (1 / 4 word-steps per s)
            "classification": section("clip-ck", words=2, steps=3, median=0.1, steady=4.0, prepare=0.0, eval_=None),
            # exactly MEDIAN_MIN_STEPS steps: the median (0.5 s for 1 word)
            "generation": section("sd-ck", words=1, steps=5, median=0.5, steady=99.0, prepare=16.0, eval_={"kind": "generation", "seconds_per_image_step": 0.01}),
        },
    }


def test_costs_per_word_step_and_per_prepared_image() -> None:
    costs = costs_from_results(results())
    assert {f: c["seconds_per_word_step"] for f, c in costs.items()} == pytest.approx({"owlv2": 0.05, "clip": 0.25, "sd": 0.5})
    assert {f: c["prepare_seconds_per_image"] for f, c in costs.items()} == pytest.approx({"owlv2": 1.0, "clip": 0.0, "sd": 2.0})
    assert seconds_per_word_step({"words": 2, "steps": 4, "median_step_seconds": 1.0, "steady_word_steps_per_s": 8.0}) == pytest.approx(1 / 8)


def test_projection_hours_by_hand() -> None:
    p = project(results())
    for key, words in (("section4", 400), ("section5", 1600)):  # per model: 4 datasets x 10 concepts x 10 trials (x 4 deltas)
        s = p["sections"][key]
        assert s["words"] == 3 * words
        hours = {row["stage"]: row["hours"] for row in s["rows"]}
        expected = {
            "train owlv2 words": words * 1000 * 0.05 / 3600,
            "train clip words": words * 1000 * 0.25 / 3600,
            "train sd words": words * 1000 * 0.5 / 3600,
            # (1 + 0 + 2) s per image x 10 concepts x 8 images x 4 datasets: once, whatever the deltas
            "prepare (frozen image side, once per word set)": 3.0 * 80 * 4 / 3600,
            "evaluate on owlv2": 3 * words * 2.0 / 3600,  # every word on its 3 targets' owlv2 side
            "evaluate on sd": 3 * words * 0.01 * 8 * 50 / 3600,  # 8 images of 50 steps per word
        }
        assert hours == pytest.approx(expected)
        assert s["hours"] == pytest.approx(sum(expected.values()))
        assert s["paper"]["gpu_hours"] == (480.0 if key == "section4" else 2400.0)


def test_projection_text_says_which_hours() -> None:
    cpu = render_projection(project(results()))
    gpu = render_projection(project(results("cuda")))
    total4 = project(results())["sections"]["section4"]["hours"]
    assert f"{total4:>10.2f} device-hours (CPU, NOT GPU-hours)" in cpu
    assert "GPU-hours" in gpu and "NOT GPU-hours" not in gpu
    assert gpu.startswith("Costs measured on: GPU H100, fp16, models ")


def test_report_derived_numbers() -> None:
    assert _per_word({"flops_per_step": 6e9, "words": 3}) == pytest.approx(2e9)
    assert _per_word({"flops_per_step": 6e9, "words": 0}) is None
    assert _share({"peak_flops_share": 0.1234}, "peak_flops_share") == ", 12.3% of the GPU's peak"
    assert _share({}, "peak_flops_share") == ""
    assert _ratio({"ratio": 12.34, "target": 10, "meets_target": True}) == "12.3x (meets the 10x target)"
    assert _ratio({"ratio": 8.0, "target": 10, "meets_target": False}) == "8.0x (below the 10x target)"
    assert _ratio({"ratio": 2.0}) == "2.0x" and _ratio({}) == "—"
    assert _passes({"words": 10, "words_per_pass": 4}) == " vwbench's steps went through the model 4 word(s) at a time (3 passes per step)."
    assert _passes({"words": 4, "words_per_pass": 4}) == ""
    assert [_flop(v) for v in (2.5e12, 3e9, 4.5e6, 1500.0, 12.0, None)] == ["2.5 TFLOP", "3 GFLOP", "4.5 MFLOP", "1.5 kFLOP", "12 FLOP", "—"]


def test_companion_rate_is_words_per_median_step() -> None:
    other = results("cuda")
    other["sections"]["detection"]["vwbench"]["median_step_peak_flops_share"] = 0.25
    lines = _companions_md([("perf-gpu.json", other)])
    row = next(line for line in lines if "| detection |" in line)
    assert "| 20.000 | 25.0% |" in row  # 4 words / 0.2 s
