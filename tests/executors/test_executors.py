"""The executor layer with toy jobs (no Ray here: tests/executors/test_ray_sweep.py runs it)."""

from __future__ import annotations

import sys
import time

import pytest
from typer.testing import CliRunner

from tests.executors.jobs import broken, refuse, square, touch
from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.executors import ExecutorSettings, Job, execute_job, make_executor
from vwbench.executors.ray_executor import check_address
from vwbench.executors.sweep_jobs import chunk_size


def _jobs(fn, values):
    return [Job(f"job {v}", fn, (v,)) for v in values]


def test_execute_job_returns_value_logs_and_one_line_errors():
    ok = execute_job(Job("sq", square, (3,)))
    assert (ok.value, ok.error, ok.logs) == (9, None, ["squared 3"]) and ok.host and ok.seconds >= 0
    failed = execute_job(Job("no", refuse, (4,)))
    assert failed.value is None and failed.error == "value 4 is not allowed; pick another"
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: its traceback shows
        execute_job(Job("bug", broken, (1,)))


def test_local_executor_runs_jobs_in_order_and_stops_at_a_user_error(tmp_path):
    with make_executor("local") as executor:
        assert executor.slots == 1 and not executor.remote
        outcomes = executor.run(_jobs(square, [1, 2, 3]), "demo")
        assert [o.value for o in outcomes] == [1, 4, 9]
        with pytest.raises(UserError, match=r"^job 5: value 5 is not allowed; pick another$"):
            executor.run(_jobs(touch, [str(tmp_path / "a")]) + _jobs(refuse, [5]) + _jobs(touch, [str(tmp_path / "b")]), "demo")
        assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # the jobs after the error never ran
        assert executor.run([], "nothing") == []


def test_submitit_debug_executor_gives_the_same_outcomes(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'vwbench[scale]')")
    settings = ExecutorSettings(slurm_cluster="debug", log_dir=tmp_path, threads=1)
    with make_executor("slurm", settings) as executor:
        assert [o.value for o in executor.run(_jobs(square, [2, 3]), "demo")] == [4, 9]
        with pytest.raises(UserError, match=r"^job 7: value 7 is not allowed"):
            executor.run(_jobs(refuse, [7]), "demo")


def test_submitit_local_executor_runs_jobs_in_subprocesses(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'vwbench[scale]')")
    settings = ExecutorSettings(slurm_cluster="local", log_dir=tmp_path, workers=2)
    with make_executor("slurm", settings) as executor:
        outcomes = executor.run(_jobs(square, [4, 5]), "demo")
    assert [o.value for o in outcomes] == [16, 25] and [o.logs for o in outcomes] == [["squared 4"], ["squared 5"]]
    folders = sorted(p.name for p in (tmp_path / "slurm").iterdir())
    assert folders and "%j" not in folders, folders  # the jobs' own folders (pickles, logs), not the pattern


def test_missing_packages_unknown_names_and_unreachable_clusters_are_one_line_errors(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="unknown executor 'dask'; use one of: local, ray, slurm"):
        make_executor("dask")
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(UserError, match=r"pip install 'vwbench\[scale\]'"):
        make_executor("slurm", ExecutorSettings(slurm_cluster="debug", log_dir=tmp_path))
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"needs the ray package: pip install 'vwbench\[scale\]'"):
        make_executor("ray")
    start = time.perf_counter()
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:1 .*ray start --head"):
        check_address("127.0.0.1:1")
    assert time.perf_counter() - start < 10  # ray itself would retry for minutes
    with pytest.raises(UserError, match="not HOST:PORT"):
        check_address("headnode")


def test_slurm_without_sbatch_names_the_fix(monkeypatch, tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="no sbatch on PATH.*--slurm-local"):
        make_executor("slurm", ExecutorSettings(log_dir=tmp_path))


def test_a_slurm_job_that_raised_is_reported_by_its_exception_not_as_a_timeout():
    submitit = pytest.importorskip("submitit", reason="submitit is not installed")
    from types import SimpleNamespace

    from vwbench.executors.base import Job
    from vwbench.executors.slurm import SlurmExecutor

    class Handle:
        job_id = "42"

        def __init__(self, error):
            self.error = error

        def result(self):
            raise self.error

    stub = SimpleNamespace(_submitit=submitit)
    job = Job("clip->owlv2 on synth-voc", print)
    failed = submitit.core.utils.FailedJobError(  # submitit's own layout (submitit/core/core.py)
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call last):\n"
        "  File \"x.py\", line 1, in <module>\nValueError: boom\n\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - /logs/42_0_log.err\n  - /logs/42_0_log.out"
    )
    with pytest.raises(UserError, match=r"Slurm job 42 failed: ValueError: boom") as info:
        SlurmExecutor._result(stub, job, Handle(failed))
    assert "slurm-time" not in str(info.value)
    with pytest.raises(UserError, match=r"did not finish .*raise --slurm-time"):
        SlurmExecutor._result(stub, job, Handle(submitit.core.utils.UncompletedJobError("Job 42 timed out")))


def test_chunking_spreads_each_word_group_over_the_workers():
    # local: one job per group; a parallel executor: a group in as many chunks as workers
    assert chunk_size(12, slots=1, words_per_job=None, split_groups=False) == 12
    assert chunk_size(12, slots=4, words_per_job=None, split_groups=True) == 3
    assert chunk_size(10, slots=4, words_per_job=None, split_groups=True) == 3
    assert chunk_size(2, slots=4, words_per_job=None, split_groups=True) == 1
    assert chunk_size(12, slots=4, words_per_job=5, split_groups=True) == 5


def test_sweep_refuses_options_of_another_executor(tmp_path):
    runner = CliRunner()  # checked before any task is loaded
    base = ["sweep", "--suite", "tiny", "--tasks-dir", str(tmp_path), "--out", str(tmp_path)]
    for extra, expected in ((["--executor", "dask"], "unknown executor 'dask'"),
                            (["--address", "10.0.0.1:6379"], "--address applies to --executor ray"),
                            (["--workers", "2"], "--workers applies to --executor ray or slurm"),
                            (["--executor", "ray", "--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm")):
        res = runner.invoke(app, base + extra)
        assert res.exit_code != 0 and isinstance(res.exception, UserError) and expected in str(res.exception), (extra, res.output)


def test_a_sweep_for_workers_elsewhere_checks_only_the_device_name(tiny_tasks, tmp_path, monkeypatch):
    """The workers of ray/slurm may have the GPU the submitting machine lacks: `--device cuda` goes
    on to the executor there (which here finds no sbatch), where a local sweep refuses it at once;
    an unknown device name is refused either way. No --out is left behind."""
    import shutil as shutil_module

    import torch

    pytest.importorskip("submitit", reason="submitit is not installed")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(shutil_module, "which", lambda name, *a, **k: None)
    runner, out = CliRunner(), tmp_path / "out"
    base = ["sweep", "--suite", "tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out)]
    slurm = runner.invoke(app, [*base, "--executor", "slurm", "--device", "cuda"])
    assert isinstance(slurm.exception, UserError) and "found no sbatch on PATH" in str(slurm.exception), slurm.output
    local = runner.invoke(app, [*base, "--device", "cuda"])
    assert isinstance(local.exception, UserError) and "no CUDA device is available" in str(local.exception), local.output
    unknown = runner.invoke(app, [*base, "--executor", "slurm", "--device", "tpu"])
    assert isinstance(unknown.exception, UserError) and str(unknown.exception) == "unknown device 'tpu'; use auto, cpu or cuda"
    assert not out.exists()
