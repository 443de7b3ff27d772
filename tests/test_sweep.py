"""`vwbench sweep --suite`: every task of a suite, resumable through the stored results."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.registry import TaskRegistry
from vwbench.results import read_result


def test_registry_knows_its_suites(tiny_tasks):
    registry = TaskRegistry.from_dir(tiny_tasks)
    assert registry.suites() == ["tiny"]
    tasks = registry.suite("tiny")
    assert len(tasks) == 9 and {t.dataset.name for t in tasks} == {"synth-tiny"}


def test_sweep_runs_the_selected_tasks_then_reuses_them(tiny_tasks, tmp_path):
    out = tmp_path / "runs"
    args = ["sweep", "--suite", "tiny", "--pair", "clip->clip", "--pair", "clip->owlv2", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    files = sorted((out / "results").rglob("*.json"))
    assert [read_result(f).task for f in files] == ["clip->clip", "clip->owlv2"]
    # one word set serves both targets
    assert len(list((out / "words").rglob("*.safetensors"))) == 1
    stamps = [f.stat().st_mtime_ns for f in files]
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("reusing the stored result") == 2
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_sweep_refuses_unknown_suite_and_pair(tiny_tasks, tmp_path):
    runner = CliRunner()
    bad_suite = runner.invoke(app, ["sweep", "--suite", "tinyy", "--tasks-dir", str(tiny_tasks)])
    assert bad_suite.exit_code != 0 and isinstance(bad_suite.exception, UserError)
    assert "unknown suite 'tinyy'" in str(bad_suite.exception) and "'tiny'" in str(bad_suite.exception)  # the suggestion
    bad_pair = runner.invoke(app, ["sweep", "--suite", "tiny", "--pair", "sd->dalle", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path)])
    assert bad_pair.exit_code != 0 and "sd->dalle" in str(bad_pair.exception or bad_pair.output)
    bad_target = runner.invoke(app, ["sweep", "--suite", "tiny", "--target", "dalle", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "t")])
    assert bad_target.exit_code != 0 and "target(s) ['dalle']" in str(bad_target.exception)  # not a sweep of 0 tasks
    assert not (tmp_path / "t").exists()


def test_sweep_reads_pair_and_dataset_names_as_run_does(tiny_tasks):
    from vwbench.commands.sweep import _select

    tasks = _select(TaskRegistry.from_dir(tiny_tasks), "tiny", ["Synth_Tiny"], ["CLIP -> OWLv2", "classification->classification"], None)
    assert sorted(t.name for t in tasks) == ["clip->clip", "clip->owlv2"]
    tasks = _select(TaskRegistry.from_dir(tiny_tasks), "tiny", None, None, ["detection"])  # a family alias, as in a task name
    assert sorted(t.name for t in tasks) == ["clip->owlv2", "owlv2->owlv2", "sd->owlv2"]


def test_ls_filters_that_match_nothing_are_errors(tiny_tasks):
    runner = CliRunner()
    for option, value, message in (("--dataset", "nope", "unknown dataset 'nope'"), ("--tier", "Tiny", "--tier 'Tiny': no task has it")):
        res = runner.invoke(app, ["ls", "--json", option, value, "--tasks-dir", str(tiny_tasks)])
        assert res.exit_code != 0 and message in str(res.exception)
    # the study listing filters the same way (it printed an empty table)
    for option, value, message in (("--dataset", "nope", "unknown dataset 'nope'"), ("--tier", "Tiny", "--tier 'Tiny': no study task has it")):
        res = runner.invoke(app, ["ls", "--studies", "--json", option, value])
        assert res.exit_code != 0 and message in str(res.exception)
    res = runner.invoke(app, ["ls", "--studies", "--json", "--dataset", "Synth_COCO"])
    assert res.exit_code == 0 and {r["dataset"] for r in json.loads(res.output)} == {"synth-coco"}


def test_sweep_runs_each_transfer_on_cross_model_tasks_only(tiny_tasks, tmp_path):
    out = tmp_path / "runs"
    args = ["sweep", "--suite", "tiny", "--target", "clip", "--pair", "clip->clip", "--pair", "owlv2->clip",
            "--transfer", "lstsq", "--transfer", "random", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    stored = sorted((read_result(f).task, read_result(f).transfer) for f in (out / "results").rglob("*.json"))
    assert stored == [("clip->clip", "identity"), ("owlv2->clip", "lstsq"), ("owlv2->clip", "random")]
