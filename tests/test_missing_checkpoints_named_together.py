"""A run missing several checkpoints names them all in its one-line error, so a user fetches
them in one go instead of learning the next one from each new attempt."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml


def _tasks_missing(tiny_tasks: Path, tmp_path: Path, which: dict[str, Path]) -> Path:
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    tier_file = tasks / "models" / "tiny.yaml"
    tier = yaml.safe_load(tier_file.read_text())
    for name, folder in which.items():
        entry = tier["judge"] if name == "judge" else tier["models"][name]
        entry["checkpoint"]["path"] = str(folder)
    tier_file.write_text(yaml.safe_dump(tier))
    return tasks


def _run(tasks: Path, out: Path, task: str, monkeypatch, capsys) -> tuple[int, list[str]]:
    from tests.test_cli_pins import _main

    code, _, err = _main(monkeypatch, capsys, "run", "--task", task, "--dataset", "synth-tiny", "--tasks-dir", tasks, "--out", out, "--steps", "0", "--trials", "1")
    return code, err.splitlines()


def test_every_missing_checkpoint_of_a_run_is_named_in_one_line(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    gone = {"clip": tmp_path / "no-clip", "sd": tmp_path / "no-sd", "judge": tmp_path / "no-judge"}
    code, err = _run(_tasks_missing(tiny_tasks, tmp_path, gone), tmp_path / "o", "clip->sd", monkeypatch, capsys)
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert errors[0].startswith("error: 3 checkpoints are missing: checkpoint folder ")
    for folder in gone.values():
        assert f"checkpoint folder {folder} not found" in errors[0]
    assert not (tmp_path / "o" / "results").exists()


def test_a_single_missing_checkpoint_keeps_its_own_message(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    code, err = _run(_tasks_missing(tiny_tasks, tmp_path, {"owlv2": tmp_path / "no-owl"}), tmp_path / "o", "clip->owlv2", monkeypatch, capsys)
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and errors == [f"error: checkpoint folder {tmp_path / 'no-owl'} not found"], err


def test_a_judge_is_not_required_where_the_target_does_not_generate(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    gone = {"owlv2": tmp_path / "no-owl", "judge": tmp_path / "no-judge"}
    code, err = _run(_tasks_missing(tiny_tasks, tmp_path, gone), tmp_path / "o", "clip->owlv2", monkeypatch, capsys)
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and errors == [f"error: checkpoint folder {tmp_path / 'no-owl'} not found"], err
