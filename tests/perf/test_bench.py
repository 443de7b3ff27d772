"""`vwbench bench` on tiny random-config models: both sides of every section compute the same
numbers, the report holds every section and is written atomically, the projection names its
device and the paper's costs, bad options are one-line errors. Timings are never asserted."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml

from vwbench.perf.bench import run_bench
from vwbench.perf.harness import run_job
from vwbench.perf.report import write_report
from vwbench.perf.sections import SECTIONS, TRAINING_SECTIONS, BenchOptions, spread, with_quick_defaults


@pytest.fixture(scope="module")
def bench_tasks(tiny_tasks, tmp_path_factory):
    """The tiny tasks plus a one-task suite, so the suite section's two sweeps stay short."""
    root = tmp_path_factory.mktemp("bench-tasks") / "tasks"
    shutil.copytree(tiny_tasks, root)
    dataset = yaml.safe_load((root / "datasets" / "synth-tiny.yaml").read_text())
    dataset.update(name="synth-tiny-one", concepts=["circle", "square"])
    (root / "datasets" / "synth-tiny-one.yaml").write_text(yaml.safe_dump(dataset))
    suite = {"name": "tiny-one", "datasets": ["synth-tiny-one"], "pairs": ["clip->clip"],
             "settings": {"hyperparameters": {"steps": 2, "trials": 1, "images_per_concept": 2}}}
    (root / "suites" / "tiny-one.yaml").write_text(yaml.safe_dump(suite))
    return root


@pytest.fixture(scope="module")
def results(bench_tasks):
    """One quick bench of every section, its jobs run in this process (the suite's sweeps and one
    test below run in child processes)."""
    options = with_quick_defaults(BenchOptions(
        sections=SECTIONS, quick=True, tasks_dir=str(bench_tasks), train_dataset="synth-tiny", trials=2, steps=3,
        naive_words=2, naive_steps=2, map_images=150, suite="tiny-one", isolate=False,
    ))
    return run_bench(options, command="vwbench bench --quick (test)")


@pytest.mark.parametrize("section", list(TRAINING_SECTIONS))
def test_reference_loops_compute_the_batched_losses(results, section):
    s = results["sections"][section]
    batched, naive = s["vwbench"]["losses"], s["reference"]["losses"]  # [step][word], [word][step]
    words = s["reference"]["words"]
    assert words == [0, s["vwbench"]["words"] - 1]
    for j, w in enumerate(words):
        assert len(naive[j]) == 2
        for step in range(2):
            assert abs(naive[j][step] - batched[step][w]) <= 1e-4
        assert naive[j][0] != naive[j][1]  # a step was taken between them
    assert s["check"]["ok"] and s["check"]["max_abs_diff"] <= 1e-4
    # the reference runs the image side every step, vwbench only once in prepare
    per_word_batched = s["vwbench"]["flops_per_step"] / s["vwbench"]["words"]
    assert s["reference"]["flops_per_word_step"] > per_word_batched


def test_batched_side_in_several_passes_computes_the_same_losses(bench_tasks):
    """A GPU that cannot hold every word at once runs a step in passes: the bench records each
    step's losses across its passes, and times steps, not passes."""
    options = with_quick_defaults(BenchOptions(
        sections=("classification",), quick=True, tasks_dir=str(bench_tasks), train_dataset="synth-tiny", trials=2, steps=4,
        naive_words=2, naive_steps=2, words_per_pass=1, isolate=False,
    ))
    section = run_bench(options, command="vwbench bench --words-per-pass 1 (test)")["sections"]["classification"]
    batched = section["vwbench"]
    assert batched["words_per_pass"] == 1 and batched["words"] > 1
    assert len(batched["losses"]) == 2 and all(len(step) == batched["words"] for step in batched["losses"])
    assert section["check"]["ok"] and section["check"]["max_abs_diff"] <= 1e-4
    assert batched["median_step_seconds"] > 0


def test_map_backends_give_identical_values(results):
    s = results["sections"]["map"]
    fast, slow = s["check"]["faster_coco_eval"], s["check"]["pycocotools"]
    assert fast == slow and s["check"]["ok"]
    assert 0.0 < fast["map"] < fast["map50"] < 1.0
    assert s["vwbench"]["images"] == 100  # --quick caps the images


def test_suite_section_runs_cold_then_warm_in_child_processes(results):
    s = results["sections"]["suite"]
    assert s["datasets"] == ["synth-tiny-one"]
    for phase in ("cold", "warm"):
        assert s[phase]["wall_s"] > 0 and s[phase]["peak_rss_mb"] > 50  # a python process with torch
    rows = {r["process"]: r for r in results["memory"]}
    assert rows["suite / cold"]["over_cpu_target"] is False


def test_report_is_written_atomically_with_every_section(results, tmp_path):
    out = tmp_path / "board" / "perf.md"
    out.parent.mkdir()
    out.write_text("old report")
    markdown, json_path = write_report(results, out)
    text = markdown.read_text()
    for heading in ("## Summary", "## Detection training", "## Classification training", "## Generation training",
                    "## Detection mAP", "## The tiny-one suite, cold vs warm", "## Peak memory", "## Projection"):
        assert heading in text
    for version in ("torch", "diffusers", "transformers", "open_clip_torch", "faster-coco-eval", "pycocotools"):
        assert f"{version} " in text
    stored = json.loads(json_path.read_text())
    assert stored["schema"] == "vwbench.perf/1" and sorted(stored["sections"]) == sorted(SECTIONS)
    assert sorted(p.name for p in out.parent.iterdir()) == ["perf.json", "perf.md"]  # no temp files left


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from vwbench.cli import main

    monkeypatch.setattr(sys, "argv", ["vwbench", "bench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_projection_names_its_device_and_the_papers_costs(results, tmp_path, monkeypatch, capsys):
    _, json_path = write_report(results, tmp_path / "perf.md")
    code, out, _ = _cli(monkeypatch, capsys, "--project", "paper", "--costs", str(json_path))
    assert code == 0
    assert "Costs measured on: CPU" in out and "NOT GPU-hours" in out
    assert "12 hours on 40 RTX 2080 Ti = 480 GPU-hours" in out
    assert "about 2.5 days on 40 RTX 2080 Ti = 2,400 GPU-hours" in out
    assert "1,200 words" in out and "4,800 words" in out


@pytest.mark.parametrize("args, message", [
    (["--sections", "detection,speed"], "unknown --sections speed"),
    (["--project", "moon"], "unknown --project"),
    (["--costs", "x.json"], "--costs goes with --project"),
    (["--out", "perf.txt"], "ending in .md"),
    (["--dtype", "fp16", "--device", "cpu"], "needs --device cuda"),
    (["--dtype", "int8", "--device", "cpu"], "unknown --dtype"),
    (["--device", "tpu"], "unknown --device"),
    (["--tier", "paper", "--device", "cpu"], "needs --device cuda"),
    (["--tier", "huge"], "unknown --tier"),
    (["--suite-run", "--dataset", "synth-coco"], "--suite-run"),
    (["--project", "paper", "--costs", "/nonexistent/perf.json"], "--costs /nonexistent/perf.json: no such file"),
    (["--project", "paper", "--sections", "map"], "needs the three training sections"),
    (["--threads", "0"], "--threads"),
    (["--words-per-pass", "0"], "--words-per-pass"),
    (["--render", "--out", "/nonexistent/perf.md"], "no stored bench results"),
])
def test_bad_options_exit_2_with_one_line(monkeypatch, capsys, args, message):
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unknown_suite_dataset_is_refused_before_measuring(bench_tasks, monkeypatch, capsys):
    code, _, err = _cli(monkeypatch, capsys, "--sections", "suite", "--suite", "tiny-one", "--dataset", "synth-moon",
                        "--tasks-dir", str(bench_tasks), "--device", "cpu")
    assert code == 2 and "not in suite 'tiny-one'" in err


def test_a_job_in_its_own_process_reports_its_peak_memory():
    m = run_job("map", {"backend": "faster_coco_eval", "images": 20})
    assert m.peak_rss_mb is not None and m.peak_rss_mb > 50
    assert m.result["images"] == 20 and set(m.result["values"]) == {"map", "map50"}


def test_spread_picks_first_and_last_words():
    assert spread(72, 6) == [0, 14, 28, 43, 57, 71]
    assert spread(3, 6) == [0, 1, 2] and spread(5, 1) == [0]


def test_projection_prices_a_step_at_its_median_once_the_run_has_enough_steps():
    """A GPU's first steps (kernel selection, compilation) took most of a 10-step SD 2.1 run; the
    study's 1,000-step runs are priced at the steady state."""
    from vwbench.perf.project import seconds_per_word_step

    run = {"words": 4, "steps": 10, "median_step_seconds": 0.2, "steady_word_steps_per_s": 5.0}
    assert seconds_per_word_step(run) == pytest.approx(0.05)
    assert seconds_per_word_step({**run, "steps": 3}) == pytest.approx(0.2)  # too few steps: the whole run's rate
    assert seconds_per_word_step({**run, "median_step_seconds": None}) == pytest.approx(0.2)


def test_render_rewrites_the_report_and_summarizes_the_reports_beside_it(results, tmp_path, monkeypatch, capsys):
    out = tmp_path / "perf.md"
    write_report(results, out)
    measured = json.loads(out.with_suffix(".json").read_text())["sections"]
    gpu = json.loads(json.dumps(results))
    gpu["options"].update(dtype="fp16", compile=True)
    gpu["machine"]["gpu"] = "Test GPU"
    (tmp_path / "perf-gpu.json").write_text(json.dumps(gpu))
    (tmp_path / "perf-broken.json").write_text("{")  # unreadable: skipped, not fatal
    code, stdout, _ = _cli(monkeypatch, capsys, "--render", "--out", str(out))
    assert code == 0 and f"wrote {out}" in stdout
    text = out.read_text()
    assert "## Other reports beside this one" in text and "perf-broken" not in text
    rows = [line for line in text.splitlines() if line.startswith("| [perf-gpu.md](perf-gpu.md) | Test GPU, fp16, compiled |")]
    assert [row.split(" | ")[2] for row in rows] == ["detection", "classification", "generation"]
    assert json.loads(out.with_suffix(".json").read_text())["sections"] == measured  # nothing measured again
    assert text.index("## Detection training") < text.index("## Classification training")  # the bench's order, not the JSON's


def test_rendering_the_stored_results_again_reproduces_the_measured_report(results, tmp_path, monkeypatch, capsys):
    """perf.json is stored with its keys sorted; the report rendered from it must not differ from
    the one the measuring run wrote (versions, section and model order included)."""
    out = tmp_path / "perf.md"
    write_report(results, out)
    measured = out.read_text()
    assert "- versions: python " in measured
    code, _, _ = _cli(monkeypatch, capsys, "--render", "--out", str(out))
    assert code == 0 and out.read_text() == measured


def test_partial_or_foreign_reports_are_one_line_errors_or_skipped(results, tmp_path, monkeypatch, capsys):
    out = tmp_path / "perf.md"
    write_report(results, out)
    measured = out.read_text()
    partial = {"schema": "vwbench.perf/1", "sections": {"detection": {"vwbench": {"median_step_seconds": 1}}}}
    (tmp_path / "perf-old.json").write_text(json.dumps(partial))  # beside the report: skipped, not fatal
    code, _, _ = _cli(monkeypatch, capsys, "--render", "--out", str(out))
    assert code == 0 and out.read_text() == measured
    full = json.loads(out.with_suffix(".json").read_text())
    del full["sections"]["generation"]["vwbench"]["facts"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(full))
    code, _, err = _cli(monkeypatch, capsys, "--project", "paper", "--costs", str(broken))
    assert code == 2 and "generation section of these bench results is incomplete" in err and "Traceback" not in err
    code, _, err = _cli(monkeypatch, capsys, "--project", "paper", "--costs", str(broken), "--sections", "detection,classification,generation")
    assert code == 2 and "--costs prices stored results" in err
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "perf.json").write_text(json.dumps(partial))
    code, _, err = _cli(monkeypatch, capsys, "--render", "--out", str(lone / "perf.md"))
    assert code == 2 and "not a complete bench result" in err and not (lone / "perf.md").exists()


def test_paper_models_draw_the_same_weights_in_every_process(monkeypatch):
    """Both sides of a comparison build the random-weight model in their own process: only a fixed
    seed lets their losses agree. The caller's random stream is left as it was."""
    import torch

    from vwbench.perf import paper_tier

    monkeypatch.setitem(paper_tier.BUILDERS, "toy", lambda device, dtype: torch.nn.Linear(8, 8).to(device, dtype))
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = paper_tier.build_paper_model("toy", torch.device("cpu"), torch.float32)
    torch.rand(5)
    second = paper_tier.build_paper_model("toy", torch.device("cpu"), torch.float32)
    assert torch.equal(first.weight, second.weight)
    torch.manual_seed(123)
    paper_tier.build_paper_model("toy", torch.device("cpu"), torch.float32)
    assert torch.equal(torch.rand(1), expected_next)


def test_paper_tier_builders_match_the_published_architectures():
    """The GPU path's random-weight models, built on the meta device (no memory): the parameter
    counts of SD 2.1's UNet, VAE and text encoder and of CLIP ViT-L/14 are the published ones."""
    import torch

    from vwbench.perf.paper_tier import build_paper_model

    meta = torch.device("meta")

    def count(module):
        return sum(p.numel() for p in module.parameters())

    sd = build_paper_model("sd", meta, torch.float32)
    assert (count(sd.unet), count(sd.vae), count(sd.text_encoder)) == (865_910_724, 83_653_863, 340_387_840)
    assert (sd.image_size, sd.prediction_type, sd.embedding_dim) == (768, "v_prediction", 1024)
    owl = build_paper_model("owlv2", meta, torch.float32)
    assert (owl.image_size, owl.embedding_dim) == (960, 512)
    clip = build_paper_model("clip", meta, torch.float32)
    assert (count(clip.model), clip.embedding_dim) == (427_616_513, 768)


def test_a_backend_measured_in_several_processes_keeps_the_best_call_and_checks_values_agree():
    from vwbench.perf.harness import Measurement
    from vwbench.perf.sections import best_of_processes

    def measured(seconds, median, rss, values=None):
        result = {"backend": "b", "seconds": seconds, "median_seconds": median, "repeats": 15, "values": values or {"map": 0.5}}
        return Measurement("map", result, 2.0, rss)

    best = best_of_processes([measured(0.045, 0.05, 300), measured(0.037, 0.06, 320), measured(0.041, 0.04, 310)])
    assert best.result["seconds"] == 0.037 and best.result["median_seconds"] == 0.05
    assert best.result["repeats"] == 45 and best.result["processes"] == 3
    assert best.peak_rss_mb == 320 and best.wall_s == 6.0
    with pytest.raises(RuntimeError, match="different values"):
        best_of_processes([measured(0.04, 0.05, 300), measured(0.04, 0.05, 300, {"map": 0.4})])
