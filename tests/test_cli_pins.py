"""Pins of the CLI's option plumbing (mutation-testing round 7): every option a command parses
reaches the function that uses it, under its own name, with its documented default. The heavy
function each command ends in is replaced by one that records its arguments and stops the
command, so each test takes well under a second once the tiny tasks are built."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app


class _Stop(Exception):
    """Raised by a recording stand-in: the command got as far as the call it records."""


def _stop_with(calls: list, returns=None):
    def record(*args, **kwargs):
        calls.append((args, kwargs))
        if returns is not None:
            return returns
        raise _Stop

    return record


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _stopped(result) -> None:
    assert isinstance(result.exception, _Stop), result.output


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``vwbench ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    from vwbench.cli import main

    monkeypatch.setattr(sys, "argv", ["vwbench", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ---- vwbench run ---------------------------------------------------------------------------------


def test_run_passes_every_option_to_the_run(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.runner as runner
    from vwbench.runner import RunOptions

    calls: list = []
    monkeypatch.setattr(runner, "run_task", _stop_with(calls))
    out, weights, data = tmp_path / "out", tmp_path / "w", tmp_path / "d"
    result = _invoke("run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--transfer", "ridge",
                     "--steps", 1, "--trials", 1, "--seed", 7, "--device", "cpu", "--out", out, "--weights", weights,
                     "--data-root", data, "--threads", 1, "--no-feature-cache", "--delta", 0.5, "--anchors", "circle=dog")
    _stopped(result)
    ((spec, options, _), _), = calls
    assert (spec.name, spec.dataset.name) == ("clip->owlv2", "synth-tiny")
    assert options == RunOptions(transfer="ridge", steps=1, trials=1, seed=7, device="cpu", out_dir=out, weights_dir=weights, data_root=data,
                                 threads=1, embeddings=None, delta=0.5, anchors=["circle=dog"], feature_cache=False)


def test_run_defaults_keep_the_tasks_settings(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.runner as runner
    from vwbench.runner import RunOptions

    calls: list = []
    monkeypatch.setattr(runner, "run_task", _stop_with(calls))
    monkeypatch.chdir(tmp_path)
    _stopped(_invoke("run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks))
    ((_, options, _), _), = calls
    assert options == RunOptions()  # transfer/steps/trials/seed None, device auto, out runs, cache on
    assert options.out_dir == Path("runs") and options.device == "auto" and options.feature_cache is True


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "--trials"),
    (["--steps", "-1"], "--steps"),
    (["--threads", "0"], "--threads"),
    (["--delta", "-0.5"], "--delta"),
    (["--device", "tpu"], "tpu"),
    (["--transfer", "no-such-method"], "no-such-method"),
    (["--anchors", "circle=dog"], "--delta"),
])
def test_run_refuses_a_bad_option_in_one_line_with_exit_2_and_no_out(tiny_tasks, tmp_path, monkeypatch, capsys, args, message) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _main(monkeypatch, capsys, "run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks,
                                 "--out", out, "--device", "cpu", "--threads", "1", *args)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and message in stderr
    assert not out.exists()


def test_run_refuses_delta_with_submitted_embeddings(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    code, _, stderr = _main(monkeypatch, capsys, "run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks,
                            "--out", tmp_path / "out", "--embeddings", tmp_path / "e.safetensors", "--delta", "0")
    assert code == 2 and "--delta applies to word training; submitted --embeddings are not trained" in stderr and not (tmp_path / "out").exists()


# ---- vwbench sweep -------------------------------------------------------------------------------


@pytest.fixture
def sweep_calls(monkeypatch):
    """Records make_executor's (name, settings) and plan_sweep's arguments; plan_sweep stops the sweep."""
    import vwbench.executors as executors
    import vwbench.executors.sweep_jobs as sweep_jobs
    from vwbench.executors.local import LocalExecutor

    made: list = []
    planned: list = []

    def make(name, settings):
        made.append((name, settings))
        return LocalExecutor(settings)

    monkeypatch.setattr(executors, "make_executor", make)
    monkeypatch.setattr(sweep_jobs, "plan_sweep", _stop_with(planned))
    return made, planned


def test_sweep_passes_its_options_to_the_runs_and_the_executor(tiny_tasks, tmp_path, sweep_calls) -> None:
    from vwbench.runner import RunOptions

    made, planned = sweep_calls
    out, weights, data = tmp_path / "out", tmp_path / "w", tmp_path / "d"
    _stopped(_invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--dataset", "synth-tiny", "--pair", "clip->owlv2", "--pair", "owlv2->clip",
                     "--transfer", "ridge", "--steps", 1, "--trials", 1, "--seed", 7, "--device", "cpu", "--out", out,
                     "--weights", weights, "--data-root", data, "--threads", 1, "--words-per-job", 3))
    ((name, settings),) = made
    assert name == "local" and settings.threads == 1 and settings.workers is None and settings.address is None
    assert settings.log_dir == out.resolve() / ".executor" and settings.slurm_cluster == "slurm"
    ((tasks, transfer, options), kwargs), = planned
    assert sorted(t.name for t in tasks) == ["clip->owlv2", "owlv2->clip"]
    assert transfer == ["ridge"] and kwargs["words_per_job"] == 3 and kwargs["slots"] == 1
    assert options == RunOptions(steps=1, trials=1, seed=7, device="cpu", out_dir=out.resolve(), weights_dir=weights.resolve(), data_root=data.resolve(), threads=1)


def test_sweep_defaults(tiny_tasks, tmp_path, monkeypatch, sweep_calls) -> None:
    from vwbench.runner import RunOptions

    made, planned = sweep_calls
    monkeypatch.chdir(tmp_path)
    _stopped(_invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks))
    ((name, settings),) = made
    assert name == "local" and settings.threads is None and settings.slurm_time_min == 240 and settings.slurm_gpus == 0 and settings.slurm_cpus is None
    ((tasks, transfer, options), kwargs), = planned
    assert len(tasks) == 9 and transfer is None and kwargs["words_per_job"] is None
    assert options == RunOptions(out_dir=(tmp_path / "runs").resolve())


def test_sweep_target_filter(tiny_tasks, tmp_path, sweep_calls) -> None:
    _, planned = sweep_calls
    _stopped(_invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--target", "owlv2", "--out", tmp_path / "out"))
    ((tasks, _, _), _), = planned
    assert sorted(t.name for t in tasks) == ["clip->owlv2", "owlv2->owlv2", "sd->owlv2"]


def test_sweep_passes_the_slurm_settings(tiny_tasks, tmp_path, sweep_calls) -> None:
    made, _ = sweep_calls
    _stopped(_invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--pair", "clip->clip", "--executor", "slurm", "--slurm-local",
                     "--slurm-time", 5, "--slurm-gpus", 1, "--slurm-cpus", 2, "--slurm-partition", "p", "--workers", 3, "--threads", 2,
                     "--device", "cpu", "--out", tmp_path / "out"))
    ((name, settings),) = made
    assert name == "slurm"
    assert (settings.slurm_cluster, settings.slurm_time_min, settings.slurm_gpus, settings.slurm_cpus, settings.slurm_partition, settings.workers, settings.threads) \
        == ("local", 5, 1, 2, "p", 3, 2)


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers"),
    (["--address", "auto"], "--address"),
    (["--slurm-time", "5"], "--slurm-time"),
    (["--slurm-gpus", "1"], "--slurm-gpus"),
    (["--slurm-local"], "--slurm-local"),
    (["--executor", "mars"], "mars"),
    (["--seed", str(2**64)], "seed"),
    (["--trials", "0"], "--trials"),
    (["--transfer", "no-such-method"], "no-such-method"),
])
def test_sweep_refuses_a_bad_option_in_one_line_with_exit_2_and_no_out(tiny_tasks, tmp_path, monkeypatch, capsys, args, message) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _main(monkeypatch, capsys, "sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--out", out, "--device", "cpu", *args)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and message in stderr
    assert not out.exists()


# ---- vwbench delta-sweep -------------------------------------------------------------------------


def test_delta_sweep_passes_every_option_to_each_deltas_run(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.runner as runner
    from vwbench.runner import RunOptions

    calls: list = []
    monkeypatch.setattr(runner, "train_delta_words", _stop_with(calls))
    out, weights, data = tmp_path / "out", tmp_path / "w", tmp_path / "d"
    _stopped(_invoke("delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--deltas", "0.25,1",
                     "--anchors", "dog", "--steps", 1, "--trials", 1, "--seed", 7, "--device", "cpu", "--out", out, "--weights", weights,
                     "--data-root", data, "--threads", 1))
    ((spec, runs, _), _), = calls
    assert spec.name == "clip->clip"
    common = dict(steps=1, trials=1, seed=7, device="cpu", out_dir=out, weights_dir=weights, data_root=data, threads=1, anchors=["dog"])
    assert runs == [RunOptions(delta=0.25, **common), RunOptions(delta=1.0, **common)]


def test_delta_sweep_defaults_to_the_papers_deltas(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.runner as runner

    calls: list = []
    monkeypatch.setattr(runner, "train_delta_words", _stop_with(calls))
    _stopped(_invoke("delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--out", tmp_path / "out"))
    ((_, runs, _), _), = calls
    assert [r.delta for r in runs] == [0.1, 0.2, 0.5, 1.0]
    assert {(r.seed, r.steps, r.trials, r.anchors, r.device, r.threads) for r in runs} == {(None, None, None, None, "auto", None)}


@pytest.mark.parametrize("args, message", [
    (["--deltas", "-0.1"], "--deltas"),
    (["--deltas", ","], "--deltas"),
    (["--task", "clip->clip"], "more than once"),
    (["--trials", "0"], "--trials"),
])
def test_delta_sweep_refuses_a_bad_option_with_exit_2_and_no_out(tiny_tasks, tmp_path, monkeypatch, capsys, args, message) -> None:
    out = tmp_path / "out"
    code, _, stderr = _main(monkeypatch, capsys, "delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks,
                            "--out", out, "--device", "cpu", *args)
    assert code == 2 and stderr.startswith("error: ") and message in stderr and not out.exists()


# ---- vwbench check / leaderboard / validate -----------------------------------------------------


def _fake_rows(failed: bool):
    from types import SimpleNamespace

    return [SimpleNamespace(failed=failed)]


def test_check_passes_its_options_to_run_check(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.leaderboard.check as check

    calls: list = []
    monkeypatch.setattr(check, "run_check", _stop_with(calls))
    baseline = tmp_path / "leaderboard.json"
    baseline.write_text("{}")
    root, out, weights, data = tmp_path / "root", tmp_path / "out", tmp_path / "w", tmp_path / "d"
    root.mkdir()
    _stopped(_invoke("check", "--baseline", baseline, "--tasks-dir", tiny_tasks, "--out", out, "--weights", weights, "--data-root", data, "--root", root))
    ((args, kwargs),) = calls
    assert args == (baseline, tiny_tasks, out, weights, data) and kwargs["root"] == root


def test_check_exits_1_with_the_drops_on_stdout_and_0_when_within_tolerance(tmp_path, monkeypatch, capsys) -> None:
    import vwbench.leaderboard.check as check

    baseline = tmp_path / "leaderboard.json"
    baseline.write_text("{}")
    monkeypatch.setattr(check, "format_drops", lambda rows: "THE DROPS")
    monkeypatch.setattr(check, "run_check", lambda *a, **k: _fake_rows(True))
    code, out, _ = _main(monkeypatch, capsys, "check", "--baseline", baseline)
    assert code == 1 and out == "THE DROPS\n"
    monkeypatch.setattr(check, "run_check", lambda *a, **k: _fake_rows(False))
    code, out, _ = _main(monkeypatch, capsys, "check", "--baseline", baseline)
    assert code == 0 and out.startswith("ok: 1 value(s) within tolerance")


def test_check_refuses_a_root_that_is_no_folder(tmp_path, monkeypatch, capsys) -> None:
    baseline = tmp_path / "leaderboard.json"
    baseline.write_text("{}")
    code, _, stderr = _main(monkeypatch, capsys, "check", "--baseline", baseline, "--root", tmp_path / "nowhere")
    assert code == 2 and stderr.startswith("error: --root ") and stderr.count("\n") == 1


@pytest.mark.parametrize("tolerance, expected", [(None, 0.02), ("0.125", 0.125)])
def test_leaderboard_passes_the_tolerance_to_the_check_section(tmp_path, monkeypatch, tolerance, expected) -> None:
    import vwbench.leaderboard as leaderboard
    import vwbench.leaderboard.check as check

    calls: list = []
    monkeypatch.setattr(leaderboard, "collect", lambda results: [])
    monkeypatch.setattr(leaderboard, "build", lambda collected, label: {"results": ["row"]})
    monkeypatch.setattr(check, "check_section", _stop_with(calls))
    (tmp_path / "results").mkdir()
    extra = [] if tolerance is None else ["--tolerance", tolerance]
    _stopped(_invoke("leaderboard", "--results", tmp_path / "results", "--out", tmp_path / "board", "--check", "all", *extra))
    ((args, _),) = calls
    assert args == (["row"], ["all"], expected)


# ---- vwbench analyze -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["neighbors", "tsne", "truncation"])
def test_analyze_passes_device_threads_weights_and_tasks_dir(tiny_tasks, tmp_path, monkeypatch, command) -> None:
    import torch

    import vwbench.analysis.context as context
    import vwbench.runner as runner

    setups: list = []
    models: list = []
    opened: list = []
    monkeypatch.setattr(runner, "compute_setup", lambda device, threads: setups.append((device, threads)) or (torch.device("cpu"), torch.float32))
    monkeypatch.setattr(context, "Models", lambda device, weights: models.append((device, weights)) or object())
    monkeypatch.setattr(context, "open_run", _stop_with(opened))
    weights = tmp_path / "w"
    _stopped(_invoke("analyze", command, "--result", tmp_path / "r.json", "--device", "cpu", "--threads", 2, "--weights", weights, "--tasks-dir", tiny_tasks))
    assert setups == [("cpu", 2)] and models == [(torch.device("cpu"), weights)]
    ((path, registry, _), _), = opened
    assert path == tmp_path / "r.json" and registry.dataset("synth-tiny").name == "synth-tiny"


# ---- vwbench bench -------------------------------------------------------------------------------


def test_bench_passes_its_options_to_the_measurement(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.perf.bench as bench

    calls: list = []
    monkeypatch.setattr(bench, "run_bench", _stop_with(calls))
    _stopped(_invoke("bench", "--out", tmp_path / "perf.md", "--sections", "detection", "--threads", 2, "--device", "cpu", "--tasks-dir", tiny_tasks,
                     "--train-dataset", "synth-tiny", "--trials", 1, "--steps", 2, "--naive-words", 4, "--naive-steps", 5, "--map-images", 7,
                     "--words-per-pass", 3))
    ((options,), _), = calls
    assert (options.threads, options.device, options.tasks_dir, options.train_dataset, options.trials, options.steps) == (2, "cpu", str(tiny_tasks), "synth-tiny", 1, 2)
    assert (options.naive_words, options.naive_steps, options.map_images, options.words_per_pass, options.concepts) == (4, 5, 7, 3, 24)
    assert tuple(options.sections) == ("detection",) and options.quick is False and options.dtype == "fp32"


@pytest.mark.parametrize("args, message", [
    (["--out", "perf.txt"], ".md"),
    (["--device", "tpu"], "--device"),
    (["--costs", "c.json"], "--costs"),
    (["--suite-run", "--dataset", "x"], "--suite-run"),
    (["--render", "--project", "paper"], "--render"),
    (["--tier", "mini"], "--tier"),
])
def test_bench_refuses_bad_options_in_one_line(tmp_path, monkeypatch, capsys, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _main(monkeypatch, capsys, "bench", *args)
    assert code == 2 and stdout == "" and stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# ---- vwbench ls ----------------------------------------------------------------------------------


def test_ls_json_is_the_filtered_task_list_on_stdout(tiny_tasks, monkeypatch, capsys) -> None:
    import json

    code, out, err = _main(monkeypatch, capsys, "ls", "--json", "--tasks-dir", tiny_tasks, "--tier", "tiny", "--dataset", "synth-tiny")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert len(rows) == 9 and {(r["tier"], r["dataset"]) for r in rows} == {("tiny", "synth-tiny")}


# ---- vwbench run --task FAMILY:ENCODER (study tasks) ---------------------------------------------


def test_a_study_run_passes_its_options_to_the_study(tmp_path, monkeypatch) -> None:
    import vwbench.studies.runner as studies
    from vwbench.studies.runner import StudyOptions

    calls: list = []
    monkeypatch.setattr(studies, "run_study", _stop_with(calls))
    out, weights, data = tmp_path / "out", tmp_path / "w", tmp_path / "d"
    _stopped(_invoke("run", "--task", "align:owlv2->clip", "--dataset", "synth-imagenet", "--transfer", "ridge", "--seed", 7, "--device", "cpu",
                     "--out", out, "--weights", weights, "--data-root", data, "--threads", 1))
    ((spec, options, _), _), = calls
    assert (spec.name, spec.dataset.name) == ("align:owlv2->clip", "synth-imagenet")
    assert options == StudyOptions(transfer="ridge", seed=7, device="cpu", out_dir=out, weights_dir=weights, data_root=data, threads=1)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps"),
    (["--trials", "1"], "--trials"),
    (["--delta", "0"], "--delta"),
    (["--anchors", "dog"], "--anchors"),
    (["--no-feature-cache"], "--no-feature-cache"),
    (["--embeddings", "e.safetensors"], "--embeddings"),
    (["--seed", str(2**64)], "seed"),
    (["--device", "tpu"], "tpu"),
])
def test_a_study_run_refuses_word_options_and_bad_values_with_exit_2_and_no_out(tmp_path, monkeypatch, capsys, args, message) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _main(monkeypatch, capsys, "run", "--task", "probe:clip", "--dataset", "synth-imagenet", "--out", out, *args)
    assert code == 2 and stdout == "" and stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1
    assert not out.exists()


def test_ls_studies_json_filters_by_tier_and_dataset(monkeypatch, capsys) -> None:
    import json

    code, out, _ = _main(monkeypatch, capsys, "ls", "--studies", "--json", "--tier", "mini", "--dataset", "synth-imagenet")
    rows = json.loads(out)
    assert code == 0 and rows and {(r["tier"], r["dataset"]) for r in rows} == {("mini", "synth-imagenet")}
    assert "probe:clip" in {r["task"] for r in rows}


# ---- vwbench zoo ---------------------------------------------------------------------------------


def test_zoo_train_passes_only_root_and_jobs(tmp_path, monkeypatch) -> None:
    import vwbench.zoo.build as build

    calls: list = []
    monkeypatch.setattr(build, "train_zoo", _stop_with(calls))
    _stopped(_invoke("zoo", "train", "--only", "mini-clip", "--root", tmp_path, "--jobs", 3))
    ((root, only), kwargs), = calls
    assert root == tmp_path and only == ["mini-clip"] and kwargs["jobs"] == 3
    calls.clear()
    _stopped(_invoke("zoo", "train"))
    ((root, only), kwargs), = calls
    assert root == build.ZOO_DIR and only is None and kwargs["jobs"] == 2


def test_zoo_report_refuses_a_missing_board_before_writing(tmp_path, monkeypatch, capsys) -> None:
    code, _, stderr = _main(monkeypatch, capsys, "zoo", "report", "--out", tmp_path / "card", "--board", tmp_path / "none.json")
    assert code == 2 and "no leaderboard at" in stderr and not (tmp_path / "card").exists()


# ---- vwbench data --------------------------------------------------------------------------------


def test_data_prepare_passes_images_per_concept_and_defaults_to_the_tasks(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.data.prepare as prepare
    from vwbench.registry import TaskRegistry

    calls: list = []
    monkeypatch.setattr(prepare, "prepare_dataset", _stop_with(calls))
    _stopped(_invoke("data", "prepare", "--dataset", "synth-tiny", "--root", tmp_path, "--tasks-dir", tiny_tasks, "--images-per-concept", 3))
    _stopped(_invoke("data", "prepare", "--dataset", "synth-tiny", "--root", tmp_path, "--tasks-dir", tiny_tasks))
    tasks_default = next(t for t in TaskRegistry.from_dir(tiny_tasks).tasks() if t.dataset.name == "synth-tiny").hyperparameters.images_per_concept
    (((spec, root, n), _), ((_, _, default), _)) = calls
    assert spec.name == "synth-tiny" and root == tmp_path and n == 3 and default == tasks_default


# ---- vwbench analyze: the analysis options -------------------------------------------------------


@pytest.fixture
def fake_run(monkeypatch):
    """``open_run`` returns a stand-in run of the tiny tier whose task evaluates with 9 images of 11 steps."""
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    import torch

    import vwbench.analysis.context as context
    import vwbench.runner as runner

    run = MagicMock()
    run.task.tier = "tiny"
    run.task.eval = SimpleNamespace(generations_per_word=9, inference_steps=11, guidance_scale=7.5)
    run.result.seed = 5
    monkeypatch.setattr(runner, "compute_setup", lambda device, threads: (torch.device("cpu"), torch.float32))
    monkeypatch.setattr(context, "Models", lambda device, weights: MagicMock())
    monkeypatch.setattr(context, "open_run", lambda path, registry, models: run)
    monkeypatch.setattr(context, "sd_words", lambda run, models: (MagicMock(), MagicMock()))
    return run


def test_analyze_neighbors_passes_k(tiny_tasks, tmp_path, monkeypatch, fake_run) -> None:
    import vwbench.analysis.neighbors as neighbors

    calls: list = []
    monkeypatch.setattr(neighbors, "neighbor_report", _stop_with(calls))
    for extra, k in (([], 5), (["--k", 3], 3)):
        _stopped(_invoke("analyze", "neighbors", "--result", tmp_path / "r.json", "--out", tmp_path / "a" / "n", "--tasks-dir", tiny_tasks, *extra))
        assert calls[-1][0][-1] == k


@pytest.mark.parametrize("extra, expected", [([], (9, 11)), (["--generations", "2", "--inference-steps", "3"], (2, 3))])
def test_analyze_truncation_passes_generations_steps_layers_and_the_runs_seed(tiny_tasks, tmp_path, monkeypatch, fake_run, extra, expected) -> None:
    import vwbench.analysis.layers as layers

    calls: list = []
    monkeypatch.setattr(layers, "n_blocks", lambda sd: 4)
    monkeypatch.setattr(layers, "truncation_accuracy", _stop_with(calls))
    _stopped(_invoke("analyze", "truncation", "--result", tmp_path / "r.json", "--out", tmp_path / "a" / "t", "--tasks-dir", tiny_tasks,
                     "--layers", "1,3", *extra))
    ((args, kwargs),) = calls
    assert args[5] == [1, 3] and (kwargs["generations"], kwargs["steps"], kwargs["seed"], kwargs["guidance"]) == (*expected, 5, 7.5)


def test_analyze_truncation_takes_exactly_one_result(tmp_path, monkeypatch, capsys) -> None:
    code, _, stderr = _main(monkeypatch, capsys, "analyze", "truncation", "--result", tmp_path / "a.json", "--result", tmp_path / "b.json")
    assert code == 2 and "takes one --result" in stderr


def test_sweep_dataset_filter_keeps_only_that_datasets_tasks(tmp_path, sweep_calls) -> None:
    _, planned = sweep_calls
    _stopped(_invoke("sweep", "--suite", "mini", "--dataset", "synth-voc", "--device", "cpu", "--out", tmp_path / "out"))
    ((tasks, _, _), _), = planned
    assert tasks and {t.dataset.name for t in tasks} == {"synth-voc"}


def test_sweep_passes_the_ray_address(tiny_tasks, tmp_path, sweep_calls) -> None:
    made, _ = sweep_calls
    _stopped(_invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--pair", "clip->clip", "--executor", "ray", "--address", "auto",
                     "--workers", 2, "--device", "cpu", "--out", tmp_path / "out"))
    ((name, settings),) = made
    assert (name, settings.address, settings.workers) == ("ray", "auto", 2)


def test_sweep_prints_its_table_on_stdout_and_its_progress_on_stderr(tiny_tasks, tmp_path) -> None:
    result = _invoke("sweep", "--suite", "tiny", "--tasks-dir", tiny_tasks, "--pair", "clip->clip", "--steps", 0, "--trials", 1,
                     "--device", "cpu", "--threads", 1, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "suite tiny: 1 runs in" in result.stdout and "dataset" in result.stdout and "95% CI" in result.stdout
    assert "results: 1 computed, 0 reused" in result.stderr and "results:" not in result.stdout


# ---- vwbench validate / leaderboard: what goes where ---------------------------------------------


def _report(ok: bool):
    from types import SimpleNamespace

    return SimpleNamespace(ok=ok, kind="transfer-method", problems=[] if ok else ["first problem", "second problem"], info={})


@pytest.mark.parametrize("no_run", [False, True])
def test_validate_passes_no_run_and_exits_1_with_its_problems_on_stderr(tmp_path, monkeypatch, capsys, no_run) -> None:
    import vwbench.submissions as submissions

    calls: list = []
    monkeypatch.setattr(submissions, "validate", _stop_with(calls, returns=_report(False)))
    code, out, err = _main(monkeypatch, capsys, "validate", tmp_path / "sub", *(["--no-run"] if no_run else []))
    assert calls == [((tmp_path / "sub",), {"run_code": not no_run})]
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{tmp_path / 'sub'}: 2 problem(s) in this transfer-method submission:", "  - first problem", "  - second problem"]


def test_validate_of_a_valid_submission_says_so_on_stdout_and_exits_0(tmp_path, monkeypatch, capsys) -> None:
    import vwbench.submissions as submissions

    monkeypatch.setattr(submissions, "validate", lambda path, run_code: _report(True))
    code, out, err = _main(monkeypatch, capsys, "validate", tmp_path / "sub")
    assert code == 0 and out == f"{tmp_path / 'sub'}: valid transfer-method submission\n" and err == ""


def test_leaderboard_passes_name_and_check_section_and_warns_on_stderr(tmp_path, monkeypatch, capsys) -> None:
    import importlib

    import vwbench.leaderboard as leaderboard
    import vwbench.leaderboard.check as check
    collect = importlib.import_module("vwbench.leaderboard.collect")  # the module, not the function of that name

    written: list = []
    board = {"superseded_by": {"x": "y"}, "skipped": [], "results": {"r1": {"dataset": "d"}, "r2": {"dataset": "d"}}, "datasets": ["d"]}
    monkeypatch.setattr(leaderboard, "collect", lambda results: [])
    monkeypatch.setattr(leaderboard, "build", lambda collected, label: {"results": []})
    monkeypatch.setattr(check, "check_section", lambda rows, specs, tolerance: {"entries": [1, 2, 3]})
    monkeypatch.setattr(leaderboard, "write_leaderboard", _stop_with(written, returns=board))
    monkeypatch.setattr(collect, "supersede_warnings", lambda superseded: ["warning: runs differ"])
    monkeypatch.setattr(collect, "mixed_run_warnings", lambda board: [])  # the board above is no real one
    out_dir = tmp_path / "board"
    code, out, err = _main(monkeypatch, capsys, "leaderboard", "--results", tmp_path / "results", "--out", out_dir, "--name", "My board", "--check", "all")
    assert code == 0
    assert written == [((tmp_path / "results", out_dir, "My board", {"entries": [1, 2, 3]}), {})]
    assert err == "warning: runs differ\n"
    assert out == f"{out_dir}: leaderboard of 2 results over 1 dataset(s), 1 superseded by another run of their method (listed in the board), 3 run(s) stored for `vwbench check`\n"
