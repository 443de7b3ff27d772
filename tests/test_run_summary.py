"""What `vwbench run` prints: the result file's path as stdout's only line, and on stderr a summary
whose concepts follow the dataset's order and whose times say whose they are when the result was
a stored one."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from vwbench.cli import app

CONCEPTS = ["triangle", "circle", "square"]  # the dataset's order, not the alphabet's


def _unsorted_tasks(tiny_tasks: Path, root: Path) -> Path:
    """The tiny tasks with synth-tiny's concepts listed out of alphabetical order."""
    tasks = shutil.copytree(tiny_tasks, root / "tasks")
    dataset_file = tasks / "datasets" / "synth-tiny.yaml"
    dataset = yaml.safe_load(dataset_file.read_text())
    dataset["concepts"] = CONCEPTS
    dataset_file.write_text(yaml.safe_dump(dataset))
    return tasks


def _concept_rows(stderr: str) -> list[str]:
    """The concepts of the summary table, top to bottom."""
    return sorted(CONCEPTS, key=lambda c: stderr.index(f" {c} "))


def test_run_prints_its_path_on_stdout_and_labels_a_stored_runs_times(tiny_tasks: Path, tmp_path: Path) -> None:
    tasks = _unsorted_tasks(tiny_tasks, tmp_path)
    args = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tasks), "--out", str(tmp_path / "runs"), "--device", "cpu", "--threads", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (path,) = (tmp_path / "runs" / "results").rglob("*.json")
    assert first.stdout == f"{path}\n"
    assert "wall time: " in first.stderr and "stored run" not in first.stderr
    assert _concept_rows(first.stderr) == CONCEPTS

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "reusing the stored result" in second.stderr
    assert second.stdout == f"{path}\n"
    assert "wall time of the stored run (created " in second.stderr and "wall time: " not in second.stderr
    assert _concept_rows(second.stderr) == CONCEPTS


def test_a_stored_runs_wall_times_are_listed_in_run_order() -> None:
    """A stored result's JSON sorts its keys; the summary of a reused run still lists the stages
    as they happened (a study family's own stages after the shared ones)."""
    from vwbench.results.provenance import in_run_order

    stored = {"data": 1.0, "evaluate": 2.0, "load_source": 3.0, "load_target": 4.0, "metrics": 5.0, "plan": 6.0, "train": 7.0, "transfer": 8.0}
    assert list(in_run_order(stored)) == ["data", "load_source", "plan", "load_target", "train", "transfer", "evaluate", "metrics"]
    study = {"data": 1.0, "embed": 2.0, "fit probe": 3.0, "load": 4.0, "resolve": 5.0}
    assert list(in_run_order(study)) == ["resolve", "data", "load", "embed", "fit probe"]
    assert in_run_order(stored) == stored
