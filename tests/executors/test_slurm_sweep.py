"""A sweep's two phases through submitit's in-process ``debug`` cluster (the Slurm executor's
path without Slurm) store the results the local executor stores."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.executors import ExecutorSettings, make_executor
from vwbench.executors.sweep_jobs import plan_sweep
from vwbench.registry import TaskRegistry
from vwbench.results import read_result
from vwbench.runner import RunOptions

pytest.importorskip("submitit", reason="submitit is not installed (pip install 'vwbench[scale]')")


def test_submitit_debug_sweep_equals_the_local_sweep(tiny_tasks, tmp_path):
    local, debug = tmp_path / "local", tmp_path / "debug"
    res = CliRunner().invoke(app, ["sweep", "--suite", "tiny", "--pair", "owlv2->clip", "--tasks-dir", str(tiny_tasks),
                                   "--out", str(local), "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    tasks = [t for t in TaskRegistry.from_dir(tiny_tasks).suite("tiny") if t.name == "owlv2->clip"]
    options = RunOptions(device="cpu", out_dir=debug, threads=1)
    with make_executor("slurm", ExecutorSettings(slurm_cluster="debug", workers=2, threads=1, log_dir=tmp_path / "logs")) as executor:
        plan = plan_sweep(tasks, None, options, slots=executor.slots, split_groups=True)
        assert (plan.word_units, plan.stored_units, len(plan.word_jobs), len(plan.result_jobs)) == (6, 0, 2, 1)
        trained = executor.run(plan.word_jobs, "train words")
        outcomes = executor.run(plan.result_jobs, "tasks")
    assert sum(len(o.value) for o in trained) == 6 and not outcomes[0].value.reused
    want = read_result(next((local / "results").rglob("*.json")))
    got = outcomes[0].value.result
    assert got.value == pytest.approx(want.value, abs=1e-6) and got.per_concept == pytest.approx(want.per_concept, abs=1e-6)
    again = plan_sweep(tasks, None, options, slots=2)
    assert (again.stored_units, again.word_jobs) == (6, [])
