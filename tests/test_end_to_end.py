"""`vwbench run` end to end on tiny random-config models of the three real architectures.

The numbers are meaningless (the models are untrained); what is checked is that every stage runs
through the real code paths and writes a schema-valid result with provenance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.results import read_result
from vwbench.results.provenance import cpu_model

PAIRS = ["sd->sd", "owlv2->owlv2", "clip->clip", "sd->owlv2", "owlv2->clip", "clip->sd"]


@pytest.mark.parametrize("pair", PAIRS)
def test_run_writes_a_schema_valid_result(tiny_tasks, tmp_path, pair):
    out = tmp_path / "runs"
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--task", pair, "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    files = list((out / "results").rglob("*.json"))
    assert len(files) == 1
    stored = read_result(files[0])
    source, target = pair.split("->")
    assert (stored.task, stored.source, stored.target, stored.dataset) == (pair, source, target, "synth-tiny")
    assert stored.transfer == ("identity" if source == target else "lstsq")
    assert stored.n_trials == 2 and stored.steps == 2 and len(stored.per_word) == 6
    assert set(stored.per_concept) == {"circle", "square", "triangle"}
    assert 0.0 <= stored.ci95[0] <= stored.value <= stored.ci95[1] <= 1.0
    roles = {c.role for c in stored.provenance.checkpoints}
    assert roles >= {"source", "target"} and ("judge" in roles) == (target == "sd")
    assert all(c.sha256 for c in stored.provenance.checkpoints)
    assert {"train", "evaluate"} <= set(stored.provenance.wall_time_s)
    assert stored.provenance.versions["torch"]
    assert stored.provenance.machine["cpu"] == cpu_model() and stored.provenance.machine["torch_threads"] >= 1
    assert Path(stored.provenance.words_file).exists()
    # the settings that made the number (the suite's 2 steps and 2 generations; defaults.yaml's lr and guidance)
    hp, ev = stored.provenance.settings["hyperparameters"], stored.provenance.settings["eval"]
    assert (hp["steps"], hp["trials"], hp["lr"], hp["n_vectors"]) == (2, 2, 1e-4, 4)
    assert (ev["generations_per_word"], ev["inference_steps"], ev["guidance_scale"]) == (2, 2, 7.5)
    samples = files[0].with_suffix(".samples")
    if target == "sd":  # one sample generation per concept, for the leaderboard page
        assert sorted(p.name for p in samples.iterdir()) == ["circle.png", "square.png", "triangle.png"]
    else:
        assert not samples.exists()


def test_second_run_reuses_the_trained_words(tiny_tasks, tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    words = list((out / "words").rglob("*.safetensors"))
    mtime = words[0].stat().st_mtime_ns
    (result_file,) = (out / "results").rglob("*.json")
    first_value = read_result(result_file).value
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "reusing the stored result" in second.output  # a finished unit is not evaluated again
    result_file.unlink()
    third = CliRunner().invoke(app, args)
    assert third.exit_code == 0, third.output
    assert "reusing trained words" in third.output
    assert words[0].stat().st_mtime_ns == mtime
    # same key -> the same result file, rewritten with the same number
    assert list((out / "results").rglob("*.json")) == [result_file]
    assert read_result(result_file).value == first_value


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vwbench.cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_unknown_task_is_one_line_exit_2():
    proc = _cli("run", "--task", "sd->dalle", "--dataset", "synth-coco")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "dalle" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        # `python -m vwbench.cli` is the program's name here (click's), `vwbench` when installed
        (["run", "--dataset", "synth-coco"], "error: Missing option '--task' / '-t'; see 'python -m vwbench.cli run --help'"),
        # click raises these before it knows the command: the path is read from the arguments
        (["run", "--task"], "error: Option '--task' requires an argument; see 'vwbench run --help'"),
        (["zoo", "report", "--out"], "error: Option '--out' requires an argument; see 'vwbench zoo report --help'"),
        (["run", "--task", "clip->clip", "--steps", "abc"], "error: Invalid value for '--steps': Input should be a valid integer, unable to parse string as an integer; see 'python -m vwbench.cli run --help'"),
        (["nosuch"], "error: No such command 'nosuch'; see 'python -m vwbench.cli --help'"),
    ],
)
def test_a_usage_error_is_one_line_exit_2(argv, line):
    """click's usage errors (a missing or malformed option, an unknown command) were four lines."""
    proc = _cli(*argv)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [line], proc.stderr


def test_missing_checkpoint_is_one_line_exit_2(tiny_tasks, tmp_path):
    broken = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, broken)
    tier = yaml.safe_load((broken / "models" / "tiny.yaml").read_text())
    tier["models"]["clip"]["checkpoint"]["path"] = str(tmp_path / "nowhere")
    (broken / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    proc = _cli("run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", str(broken), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "results").exists()


@pytest.mark.parametrize("argv", [
    ["run", "--task", "clip->clip", "--dataset", "synth-tiny"],
    ["run", "--task", "probe:clip", "--dataset", "synth-imagenet"],  # the repository's study tasks: the tiny ones have none
    ["sweep", "--suite", "tiny", "--dataset", "synth-tiny"],
    ["delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny"],
    ["bench", "--sections", "map", "--map-images", "10"],
    ["zoo", "report"],
], ids=lambda argv: " ".join(argv[:2]))
def test_an_unwritable_out_is_one_line_exit_2_before_any_work(argv, tiny_tasks, tmp_path, monkeypatch, capsys):
    """A file where the output folder should be: the command stops at once with the fix, and
    leaves the file as it was."""
    from vwbench.cli import main

    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    out = str(blocker / "perf.md") if argv[0] == "bench" else str(blocker)
    extra = [] if argv[0] in ("bench", "zoo") or ":" in argv[2] else ["--tasks-dir", str(tiny_tasks)]
    monkeypatch.setattr("sys.argv", ["vwbench", *argv, *extra, "--out", out])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip().count("\n") == 0 and f"cannot write in {blocker}" in err and "--out" in err
    assert blocker.read_text() == "keep me"


def _tasks_with_n_vectors(tiny_tasks, tmp_path, n_vectors: int):
    """A copy of the tiny tasks folder whose dataset trains words of ``n_vectors`` vectors."""
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    path = tasks / "datasets" / "synth-tiny.yaml"
    dataset = yaml.safe_load(path.read_text())
    dataset["settings"] = {"hyperparameters": {"n_vectors": n_vectors}}
    path.write_text(yaml.safe_dump(dataset))
    return tasks


def test_words_too_long_for_a_text_context_fail_before_training(tiny_tasks, tmp_path):
    """n_vectors beyond the target's context (within the task schema's bound of 75, over the tiny
    models' 16 and 32 positions): one line, and nothing trained or stored first."""
    broken = _tasks_with_n_vectors(tiny_tasks, tmp_path, 70)
    out = tmp_path / "o"
    proc = _cli("run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(broken), "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "words of 70 vectors do not fit its prompt" in proc.stderr.splitlines()[-1] and "lower n_vectors" in proc.stderr
    assert not (out / "words").exists() and not (out / "results").exists()
    # a sweep's word-unit job (Ray, Slurm) checks its source before training too
    from vwbench.errors import UserError
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions
    from vwbench.units import _context

    task = TaskRegistry.from_dir(broken).get("clip->owlv2", "synth-tiny")
    with pytest.raises(UserError, match="words of 70 vectors do not fit"):
        _context(task, RunOptions(out_dir=out, device="cpu", threads=1))


def test_words_that_fit_the_source_but_not_the_target_fail_before_word_jobs_train(tiny_tasks, tmp_path):
    """A sweep's word-unit jobs and a delta sweep train on the source and leave evaluation to
    other jobs: they check the target's context before training too (the tiny OWLv2 has 16
    positions, the tiny CLIP 32, so 20 vectors fit only the CLIP)."""
    from vwbench.errors import UserError
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, train_delta_words
    from vwbench.units import _context

    tasks = _tasks_with_n_vectors(tiny_tasks, tmp_path, 20)
    registry = TaskRegistry.from_dir(tasks)
    out = tmp_path / "o"
    _context(registry.get("clip->clip", "synth-tiny"), RunOptions(out_dir=out, device="cpu", threads=1))  # fits the CLIP
    task = registry.get("clip->owlv2", "synth-tiny")
    with pytest.raises(UserError, match="owlv2: words of 20 vectors do not fit"):
        _context(task, RunOptions(out_dir=out, device="cpu", threads=1))
    with pytest.raises(UserError, match="owlv2: words of 20 vectors do not fit"):
        train_delta_words(task, [RunOptions(out_dir=out, device="cpu", threads=1, steps=2, delta=d) for d in (0.1, 1.0)])
    assert not (out / "words").exists()
    # a later task that shares an earlier one's words is checked too: a sweep plans no word job
    # for clip->clip's words when clip->owlv2 cannot evaluate them, and a delta sweep of both trains nothing
    from vwbench.executors.sweep_jobs import plan_sweep

    both = [registry.get("clip->clip", "synth-tiny"), task]
    with pytest.raises(UserError, match="owlv2: words of 20 vectors do not fit"):
        plan_sweep(both, None, RunOptions(out_dir=out, device="cpu", threads=1))
    proc = _cli("delta-sweep", "-t", "clip->clip", "-t", "clip->owlv2", "--dataset", "synth-tiny", "--deltas", "0.5,1.0", "--steps", "2",
                "--tasks-dir", str(tasks), "--out", str(out), "--device", "cpu", "--threads", "1")
    assert proc.returncode == 2 and "owlv2: words of 20 vectors do not fit" in proc.stderr.splitlines()[-1], proc.stderr
    assert not (out / "words").exists() and not (out / "results").exists()


def test_a_result_key_holds_the_held_out_data_and_a_non_float32_dtype(tiny_tasks):
    import torch

    from vwbench.pipeline_steps import result_key
    from vwbench.registry import TaskRegistry

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->owlv2", "synth-tiny")
    key = lambda dataset_hash, dtype: result_key("embeddings-abc", "lstsq", task, {}, dataset_hash, dtype)  # noqa: E731
    assert key("a", torch.float32) == key("a", torch.float32)
    assert len({key("a", torch.float32), key("b", torch.float32), key("a", torch.float16)}) == 3


def test_ls_json_lists_tasks():
    proc = _cli("ls", "--json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert len(rows) == 72 and {"task", "dataset", "tier", "metric"} <= set(rows[0])


def test_a_transfer_that_cannot_join_the_two_spaces_fails_before_training(tiny_tasks, tmp_path):
    """A linear map of the wrong width (and `identity` between models of different widths): one
    line once both models are loaded, before any word is trained (it failed after training)."""
    import torch

    from tests.submissions.helpers import linear_map

    path = linear_map(tmp_path / "map.safetensors", torch.zeros(32, 31))  # the tiny models are 32 wide
    out = tmp_path / "o"
    proc = _cli("run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--transfer", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "weight is [32, 31], the models need [32, 32]" in proc.stderr.splitlines()[-1]
    assert not (out / "words").exists() and not (out / "results").exists()


@pytest.mark.parametrize("argv", [["run", "--task", "clip->clip", "--dataset", "synth-coco"], ["sweep", "--suite", "mini"], ["bench", "--sections", "map"], ["delta-sweep", "--task", "clip->clip", "--dataset", "synth-voc"]])
def test_a_thread_count_no_machine_has_is_refused(argv):
    """torch.set_num_threads(10**8) segfaults the process: --threads stops at MAX_THREADS."""
    from typer.testing import CliRunner

    from vwbench.cli import app
    from vwbench.commands import MAX_THREADS

    res = CliRunner().invoke(app, [*argv, "--threads", "100000000"])
    assert res.exit_code == 2 and f"less than or equal to {MAX_THREADS}" in res.output


def test_delta_sweep_refuses_a_task_given_twice(tmp_path):
    from typer.testing import CliRunner

    from vwbench.cli import app

    res = CliRunner().invoke(app, ["delta-sweep", "--task", "clip->clip", "--task", "CLIP -> CLIP", "--dataset", "synth-voc", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--task clip->clip is given more than once" in str(res.exception)
    assert not (tmp_path / "o").exists()
