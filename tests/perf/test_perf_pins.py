"""Pins on the bench report's rendering and arithmetic, on hand-made sections (no measuring): every
number of ``perf.md`` in its unit and precision, the verdicts (ok / FAILED, meets / below, over
4 GiB), the ratios each section computes from its two sides, the projection's text, and how the
harness reads a child's result. Values are worked out by hand in the comments."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from vwbench.errors import UserError
from vwbench.perf import harness, report, sections
from vwbench.perf.harness import BenchError, ProcessRun, child_env, run_child_main, run_job, run_process
from vwbench.perf.project import costs_from_results, project, render_projection, seconds_per_word_step
from vwbench.perf.report import (
    _flop, _map_md, _median_rate, _memory_md, _num, _suite_md, _training_md, complete_result, read_results, render_markdown,
)
from vwbench.perf.sections import BenchOptions, memory_table


# ------------------------------------------------------------------ number formatting


def test_num_precision_and_notation() -> None:
    assert _num(12.3456) == "12.346"  # under 100: 3 decimals
    assert _num(123.456) == "123.5"  # 100 and over: 1 decimal
    assert _num(99999.0) == "99,999.0" and _num(2e5) == "2e+05"  # 1e5 and over: 3 significant digits
    assert _num(0.0005) == "0.0005" and _num(0.001) == "0.001"  # under 1e-3: g-format, not 0.001 / 0.000
    assert _num(0.0) == "0.000" and _num(None) == "—" and _num(7) == "7"
    assert _num(1536.4, 0) == "1,536" and _num(700, 0) == "700"  # MiB columns: whole numbers


def test_flop_units_at_their_boundaries() -> None:
    assert _flop(1e9) == "1 GFLOP" and _flop(999e6) == "999 MFLOP" and _flop(1e12) == "1 TFLOP" and _flop(1e3) == "1 kFLOP"
    assert _flop(0) == "—"


def test_median_rate_in_gflops() -> None:
    assert _median_rate({"median_step_flops_per_s": 4.5e10, "median_step_peak_flops_share": 0.5}) == (
        "; at the median step 45.0 GFLOP/s, 50.0% of the GPU's peak")
    assert _median_rate({}) == ""


# ------------------------------------------------------------------ hand-made sections


def training_section(*, ok: bool = True) -> dict:
    """12 words x 10 steps in 6.0 s (1.5 s of it prepare): 20 word-steps/s, 120 / 4.5 = 26.667 steps
    only; 2.4e10 FLOPs per step over 12 words: 2 GFLOP per word-step."""
    facts = {"checkpoint": "zoo/mini-clip", "words": 12, "concepts": 4, "trials": 3, "dataset": "synth-imagenet", "n_vectors": 4,
             "batch_size": 8, "device": "cpu", "dtype": "fp32", "compiled": [], "images_per_concept": 8}
    return {
        "name": "classification", "family": "clip", "facts": facts,
        "vwbench": {"words": 12, "steps": 10, "seconds_total": 6.0, "seconds_prepare": 1.5, "word_steps_per_s": 20.0,
                    "steady_word_steps_per_s": 120 / 4.5, "flops_per_step": 2.4e10, "peak_rss_mb": 1536.4, "words_per_pass": 5,
                    "achieved_flops_per_s": 3.2e10, "peak_flops_share": 0.25, "median_step_flops_per_s": 4.5e10,
                    "median_step_peak_flops_share": 0.5, "median_step_seconds": 0.6, "facts": facts, "cuda_peak_mb": None},
        "reference": {"words": [0, 11], "steps": 3, "seconds": 3.0, "word_steps_per_s": 2.0, "flops_per_word_step": 1.5e9,
                      "peak_rss_mb": 700.6, "cuda_peak_mb": None},
        "check": {"steps_compared": 3, "words_compared": [0, 11], "max_abs_diff": 2.5e-07 if ok else 0.25, "tolerance": 1e-4, "ok": ok},
        "ratio": 10.0, "median_step_ratio": 12.34, "target": 50.0, "meets_target": False,
    }


def test_training_section_markdown() -> None:
    lines = _training_md(training_section())
    assert lines[0] == "## Classification training (zoo/mini-clip)"
    assert ("Workload: 12 words (4 concepts x 3 trial(s)) of synth-imagenet, 4 vectors per word, batch 8 per word, cpu fp32. "
            "vwbench's steps went through the model 5 word(s) at a time (3 passes per step).") in lines
    assert "| vwbench (batched, `train_words`) | 12 x 10 | 6.000 (prepare 1.500) | 20.000 (steps only: 26.667) | 2 GFLOP | 1,536 |" in lines
    assert "| reference (one word at a time) | 2 x 3 | 3.000 | 2.000 | 1.5 GFLOP | 701 |" in lines
    assert ("**Ratio: 10.0x (below the 50x target)** in word-steps per second (vwbench's rate includes `prepare`). From the median "
            "step times instead (steps only, robust to other work on the machine): 12.3x.") in lines
    assert ("Same losses: the per-word losses of the first 3 steps of words [0, 11] differ by at most 2.5e-07 (tolerance 0.0001): "
            "**ok**.") in lines
    assert ("vwbench's training steps ran at 32.0 GFLOP/s as `torch.utils.flop_counter` counts them (matmuls, convolutions, "
            "attention), 25.0% of the GPU's peak; at the median step 45.0 GFLOP/s, 50.0% of the GPU's peak.") in lines


def test_training_section_says_failed_when_the_losses_differ() -> None:
    lines = _training_md(training_section(ok=False))
    assert any(line.endswith("differ by at most 0.250 (tolerance 0.0001): **FAILED**.") for line in lines)
    assert not any("**ok**" in line for line in lines)


def test_companion_row_by_hand() -> None:
    other = {"machine": {"gpu": "H100", "cpu_model": "cpu"}, "options": {"dtype": "fp16", "compile": True},
             "sections": {"map": map_section(), "classification": training_section(ok=False)}}
    lines = report._companions_md([("perf-gpu.md", other)])
    rows = [line for line in lines if line.startswith("| [perf-gpu.md]")]
    # 12 words per 0.6 s median step: 20 word-steps/s; the map section has no training rate: no row
    assert rows == ["| [perf-gpu.md](perf-gpu.md) | H100, fp16, compiled | classification | zoo/mini-clip: 12 words x 10 steps, batch 8 "
                    "| 20.000 | 50.0% | 10.0x (below the 50x target) (12.3x) | **FAILED** (0.250) | — |"]


def map_section(*, ok: bool = True, processes: int = 3) -> dict:
    values = {"map": 0.25, "map50": 0.5}
    return {
        "name": "map", "images": 1000,
        "vwbench": {"ground_truth": 1417, "detections": 3528, "processes": processes, "seconds": 0.04, "values": values,
                    "peak_rss_mb": 333.8, "repeats": 45, "median_seconds": 0.05},
        "reference": {"seconds": 0.2, "values": values if ok else {"map": 0.2, "map50": 0.5}, "peak_rss_mb": 311.2, "median_seconds": 0.4},
        "check": {"ok": ok}, "ratio": 5.0, "median_ratio": 7.66, "target": 5.0, "meets_target": True,
    }


def test_map_section_markdown() -> None:
    lines = _map_md(map_section())
    assert "3 fresh processes, the two backends alternating, each process after a small warm-up call." in lines[2]
    assert "| faster-coco-eval | 0.040 | 0.25 | 0.5 | 334 |" in lines
    assert "| pycocotools | 0.200 | 0.25 | 0.5 | 311 |" in lines
    assert ("**Ratio: 5.0x (meets the 5x target)** (the best of 45 calls each; from the median calls: 7.7x). "
            "Identical values: **yes**.") in lines
    one = _map_md(map_section(ok=False, processes=1))
    assert "each backend in its own process, each process after" in one[2]
    assert one[-2].endswith("Identical values: **NO**.")


def test_suite_section_markdown() -> None:
    section = {"suite": "mini", "datasets": ["synth-imagenet"], "command": "vwbench sweep --suite mini", "quick": False,
               "cold": {"wall_s": 236.58, "peak_rss_mb": 947.9}, "warm": {"wall_s": 10.57, "peak_rss_mb": 603.5}, "ratio": 22.38}
    lines = _suite_md(section)
    assert lines[0] == "## The mini suite, cold vs warm (reduced to synth-imagenet)"
    assert "| cold | 236.6 | 948 |" in lines and "| warm | 10.6 | 604 |" in lines
    assert "**Cold / warm: 22.4x.**" in lines
    both = _suite_md({**section, "datasets": ["synth-coco", "synth-voc"]})
    assert both[0] == "## The mini suite, cold vs warm (synth-coco, synth-voc)"


def test_memory_table_markdown_flags_only_a_cpu() -> None:
    rows = [{"process": "detection / vwbench", "peak_rss_mb": 4200.0, "cuda_peak_mb": None, "over_cpu_target": True},
            {"process": "map / reference", "peak_rss_mb": 300.0, "cuda_peak_mb": 12.5, "over_cpu_target": False}]
    cpu = _memory_md(rows, "cpu")
    assert "| detection / vwbench | 4,200 | — | **yes** |" in cpu and "| map / reference | 300 | 12 | no |" in cpu
    gpu = _memory_md(rows[1:], "cuda")
    assert "| map / reference | 300 | 12 | — |" in gpu


def results_of(sections_: dict) -> dict:
    return {
        "schema": "vwbench.perf/1", "created": "2026-01-01T00:00:00+00:00", "command": "vwbench bench", "vwbench_version": "0.0.test",
        "git_commit": None, "load_average_end": [1.0, 1.0, 1.0],
        "machine": {"host_os": "Linux", "cpu_model": "Test CPU", "cpu_cores": 4, "cpu_cores_usable": 2, "memory_gb": 15.6,
                    "load_average": [0.5, 0.5, 0.5], "device": "cpu"},
        "versions": {"numpy": "2.0", "python": "3.11.0", "torch": "2.4.0"},  # sorted, as a stored perf.json has them
        "options": {"threads": 1, "device": "cpu", "dtype": "fp32"},
        "memory": [], "sections": sections_,
    }


def test_report_summary_order_and_verdicts() -> None:
    text = render_markdown(results_of({"map": map_section(), "classification": training_section(ok=False)}))
    lines = text.splitlines()
    assert "| classification | 10.0x (below the 50x target); median-based 12.3x | **FAILED** (max loss diff 0.250) |" in lines
    assert "| map | 5.0x (meets the 5x target); median-based 7.7x | ok |" in lines
    # the bench's order (training sections first), not the stored file's
    assert lines.index("| classification | 10.0x (below the 50x target); median-based 12.3x | **FAILED** (max loss diff 0.250) |") < lines.index(
        "| map | 5.0x (meets the 5x target); median-based 7.7x | ok |")
    assert text.index("## Classification training") < text.index("## Detection mAP")
    assert "- versions: python 3.11.0, torch 2.4.0, numpy 2.0" in lines
    assert "- machine: Linux; CPU: Test CPU, 4 cores (2 usable), 15.6 GiB memory; no GPU used" in lines


def test_memory_in_gib_from_proc_meminfo(monkeypatch) -> None:
    # 16,384,000 KiB / 2**20 = 15.625 GiB -> 15.6 (as gpu_memory_gb: bytes / 2**30)
    monkeypatch.setattr(report, "Path", lambda _: SimpleNamespace(read_text=lambda: "MemFree: 1 kB\nMemTotal:       16384000 kB\n"))
    assert report._memory_gb() == 15.6


def test_gpu_memory_in_gib(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(name="Test GPU", total_memory=80 * 2**30))
    info = report.machine_info("cuda")
    assert (info["gpu"], info["gpu_memory_gb"]) == ("Test GPU", 80.0)


def test_foreign_or_incomplete_results_are_user_errors(tmp_path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "vwbench.leaderboard/1", "sections": {}}))
    with pytest.raises(UserError, match="not a vwbench bench result"):
        read_results(other)
    with pytest.raises(UserError, match=r"x.json is not a complete bench result \(ZeroDivisionError"):
        with complete_result("x.json"):
            1 / 0


# ------------------------------------------------------------------ projection


def cost_results(median: float = 0.2) -> dict:
    def section(checkpoint, eval_):
        return {"vwbench": {"words": 4, "steps": 10, "median_step_seconds": median, "steady_word_steps_per_s": 20.0, "seconds_prepare": 8.0,
                            "eval": eval_, "facts": {"concepts": 2, "images_per_concept": 4, "checkpoint": checkpoint, "batch_size": 8}}}
    return {"machine": {"device": "cpu", "cpu_model": "Test CPU"}, "options": {"threads": 2},
            "sections": {"detection": section("owl-ck", {"kind": "detection", "seconds_per_word": 2.0}),
                         "classification": section("clip-ck", None),
                         "generation": section("sd-ck", {"kind": "generation", "seconds_per_image_step": 0.0123456})}}


def test_a_negative_step_time_is_refused() -> None:
    with pytest.raises(UserError, match="no positive cost per word-step"):
        costs_from_results(cost_results(median=-0.2))


def test_too_few_steps_for_a_median_are_priced_at_the_steps_only_rate() -> None:
    # the whole run's rate (20 word-steps/s) includes prepare: the price of a step is the steps-only rate
    run = {"words": 2, "steps": 3, "median_step_seconds": 1.0, "steady_word_steps_per_s": 8.0, "word_steps_per_s": 5.0}
    assert seconds_per_word_step(run) == 1 / 8


def test_projection_text_by_hand() -> None:
    projection = project(cost_results())
    # the paper's own figures, stored with every projection: 12 h and about 2.5 days (60 h) on 40 GPUs
    assert [(s["paper"]["wall_hours"], s["paper"]["gpu_hours"]) for s in projection["sections"].values()] == [(12.0, 480.0), (60.0, 2400.0)]
    text = render_projection(projection)
    lines = text.splitlines()
    # 400 words x 1,000 steps x 0.05 s / 3600 = 5.5556 h per family in Section 4
    train = next(line for line in lines if "train owlv2 words" in line)
    assert train.endswith("0.05 s/word-step        5.56 h") and "400 words x 1,000 steps" in train
    assert "12 word sets" in next(line for line in lines if line.lstrip().startswith("prepare"))
    evaluate = next(line for line in lines if "evaluate on owlv2" in line)
    assert "1,200 words " in evaluate  # every word of all three models, on its targets
    sd = next(line for line in lines if "evaluate on sd" in line)
    assert "0.01235 s/image-step" in sd  # 4 significant digits
    assert "  paper: 12 hours on 40 RTX 2080 Ti = 480 GPU-hours" in lines
    assert "  paper: about 2.5 days on 40 RTX 2080 Ti = 2,400 GPU-hours" in lines
    assert lines[0] == "Costs measured on: CPU Test CPU, 2 torch thread(s) per process, models owl-ck, clip-ck, sd-ck, fp32."


# ------------------------------------------------------------------ the harness's child results


def fake_child(monkeypatch, payload: dict | None, returncode: int = 0) -> list:
    calls = []

    def run(argv, *, env=None, cwd=None, timeout=None):
        calls.append({"argv": list(argv), "env": env, "timeout": timeout})
        if payload is not None:
            Path(argv[-1]).write_text(json.dumps(payload))
        return ProcessRun(returncode, 1.5, 321.0, "", "line one\nlast stderr line")

    monkeypatch.setattr(harness, "run_process", run)
    return calls


def test_a_child_result_keeps_its_wall_time_memory_and_cuda_peak(monkeypatch) -> None:
    calls = fake_child(monkeypatch, {"result": {"x": 1}, "cuda_peak_mb": 12.5})
    m = run_job("map", {"images": 3}, threads=2, timeout=60)
    assert (m.job, m.result, m.wall_s, m.peak_rss_mb, m.cuda_peak_mb) == ("map", {"x": 1}, 1.5, 321.0, 12.5)
    assert calls[0]["argv"][1:3] == ["-m", "vwbench.perf.child"] and calls[0]["timeout"] == 60 and calls[0]["env"]["OMP_NUM_THREADS"] == "2"


def test_a_child_user_error_is_a_user_error(monkeypatch) -> None:
    fake_child(monkeypatch, {"error": "bad --concepts", "user_error": True}, returncode=2)
    with pytest.raises(UserError, match="^bad --concepts$"):
        run_job("train-naive", {})


def test_a_child_failure_is_a_bench_error_with_its_reason(monkeypatch) -> None:
    fake_child(monkeypatch, {"error": "Traceback: boom"}, returncode=1)
    with pytest.raises(BenchError, match="^bench job train-naive failed: Traceback: boom$"):
        run_job("train-naive", {})
    fake_child(monkeypatch, None, returncode=-9)  # killed before it wrote anything
    with pytest.raises(BenchError) as info:
        run_job("train-naive", {})
    assert str(info.value) == "bench job train-naive failed: exit code -9; stderr:\nline one\nlast stderr line"


def test_the_child_main_exits_2_on_a_user_error(tmp_path) -> None:
    def refuse():
        raise UserError("no such dataset")

    spec, out = tmp_path / "job.json", tmp_path / "out.json"
    spec.write_text(json.dumps({"job": "j", "args": {}, "threads": None}))
    assert run_child_main([str(spec), str(out)], {"j": refuse}) == 2
    assert json.loads(out.read_text()) == {"error": "no such dataset", "user_error": True}
    spec.write_text(json.dumps({"job": "j", "args": {"n": 3}, "threads": None}))
    assert run_child_main([str(spec), str(out)], {"j": lambda n: {"n": n * 2}}) == 0
    assert json.loads(out.read_text()) == {"result": {"n": 6}}


def test_run_process_exit_code_timeout_and_output_tail() -> None:
    done = run_process([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert done.returncode == 3
    killed = run_process([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.5)
    assert killed.returncode == -9 and killed.wall_s < 8
    assert harness._tail(io.BytesIO(b"x" * 10 + b"y" * 4000)) == "y" * 4000


def test_child_env_threads_and_extra() -> None:
    env = child_env(2, {"EXTRA": "1", "TOKENIZERS_PARALLELISM": "true"})
    assert [env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")] == ["2", "2", "2"]
    assert env["EXTRA"] == "1" and env["TOKENIZERS_PARALLELISM"] == "true"


# ------------------------------------------------------------------ each section's ratio


def fake_jobs(monkeypatch, results: dict) -> None:
    """``sections.run_job`` answering each job with the hand-made result (a list: one per call)."""
    def run(job, args, *, threads=None, isolate=True, env=None, timeout=None):
        answer = results[job]
        result = answer.pop(0) if isinstance(answer, list) else answer
        return harness.Measurement(job, dict(result(args) if callable(result) else result), 2.0, 100.0)

    monkeypatch.setattr(sections, "run_job", run)


def training(monkeypatch, *, fast: float, naive_losses: list, batched_losses: list) -> dict:
    facts = {"checkpoint": "zoo/mini-clip"}
    fake_jobs(monkeypatch, {
        # 4 words; a batched step of all 4 takes 0.05 s, a reference step of one word 0.1 s
        "train-batched": {"words": 4, "losses": batched_losses, "word_steps_per_s": fast, "median_step_seconds": 0.05, "facts": facts},
        "train-naive": {"losses": naive_losses, "word_steps_per_s": 4.0, "median_step_seconds": 0.1},
    })
    return sections.run_training_section("classification", BenchOptions(naive_words=2, naive_steps=2))


def test_training_ratio_and_loss_check_by_hand(monkeypatch) -> None:
    batched = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7], [0.3, 0.3, 0.3, 0.3]]  # [step][word]
    naive = [[0.5, 0.4], [0.8, 0.7 + 1e-4]]  # words 0 and 3 (spread(4, 2)), [word][step]
    s = training(monkeypatch, fast=40.0, naive_losses=naive, batched_losses=batched)
    assert s["ratio"] == 10.0  # 40 / 4 word-steps per second
    assert s["median_step_ratio"] == pytest.approx(8.0)  # 4 words per 0.05 s step vs 1 word per 0.1 s
    assert s["check"]["words_compared"] == [0, 3] and s["check"]["steps_compared"] == 2
    assert s["check"]["max_abs_diff"] == pytest.approx(1e-4) and s["meets_target"] is False


def test_training_loss_check_reads_every_compared_step(monkeypatch) -> None:
    batched = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7]]
    naive = [[0.5, 0.4], [0.8, 0.9]]  # word 3 differs by 0.2 at step 2 only
    s = training(monkeypatch, fast=200.0, naive_losses=naive, batched_losses=batched)
    assert s["check"]["ok"] is False and s["check"]["max_abs_diff"] == pytest.approx(0.2)
    assert s["ratio"] == 50.0 and s["meets_target"] is True  # exactly the 50x target meets it


def test_a_loss_difference_of_exactly_the_tolerance_passes(monkeypatch) -> None:
    s = training(monkeypatch, fast=40.0, naive_losses=[[0.0], [1e-4]], batched_losses=[[0.0, 0.0, 0.0, 0.0]])
    assert s["check"]["max_abs_diff"] == sections.LOSS_TOLERANCE and s["check"]["ok"] is True


def test_map_ratio_is_reference_time_over_ours(monkeypatch) -> None:
    def backend(seconds, median):
        return lambda args: {"backend": args["backend"], "seconds": seconds[args["backend"]], "median_seconds": median[args["backend"]],
                             "repeats": 15, "values": {"map": 0.25}}

    fake_jobs(monkeypatch, {"map": backend({"faster_coco_eval": 0.04, "pycocotools": 0.2}, {"faster_coco_eval": 0.05, "pycocotools": 0.4})})
    s = sections.run_map_section(BenchOptions())
    assert s["ratio"] == 5.0 and s["meets_target"] is True  # 0.2 / 0.04: exactly the 5x target
    assert s["median_ratio"] == pytest.approx(8.0)  # 0.4 / 0.05
    assert s["vwbench"]["repeats"] == 45 and s["vwbench"]["processes"] == 3  # 3 processes x 15 calls


def test_suite_ratio_is_cold_over_warm(monkeypatch) -> None:
    walls = [20.0, 4.0]
    monkeypatch.setattr(sections, "suite_datasets", lambda options: ["synth-x"])
    monkeypatch.setattr(sections, "run_process", lambda argv, env=None: ProcessRun(0, walls.pop(0), 500.0))
    s = sections.run_suite_section(BenchOptions())
    assert (s["cold"]["wall_s"], s["warm"]["wall_s"], s["ratio"]) == (20.0, 4.0, 5.0)
    assert s["command"] == "vwbench sweep --suite mini --out <tmp> --device cpu --dataset synth-x"


def test_memory_table_flags_over_4_gib_on_a_cpu_only() -> None:
    sections_ = {"detection": {"vwbench": {"peak_rss_mb": 4096.0}, "reference": {"peak_rss_mb": 4096.5, "cuda_peak_mb": 7.0}},
                 "suite": {"cold": {"peak_rss_mb": 10.0}, "warm": {"peak_rss_mb": 5000.0}}}
    rows = memory_table(sections_, "cpu")
    assert [(r["process"], r["over_cpu_target"]) for r in rows] == [
        ("detection / vwbench", False), ("detection / reference", True), ("suite / cold", False), ("suite / warm", True)]
    assert rows[1]["cuda_peak_mb"] == 7.0
    assert not any(r["over_cpu_target"] for r in memory_table(sections_, "cuda"))
