"""Mutation-testing round 12: a run whose source and target are one missing checkpoint (x->x)
names it once, with its own message, not as "2 checkpoints are missing"."""

from __future__ import annotations

from tests.test_missing_checkpoints_named_together import _run, _tasks_missing


def test_one_checkpoint_missing_as_source_and_target_is_named_once(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    code, err = _run(_tasks_missing(tiny_tasks, tmp_path, {"owlv2": tmp_path / "no-owl"}), tmp_path / "o", "owlv2->owlv2", monkeypatch, capsys)
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and errors == [f"error: checkpoint folder {tmp_path / 'no-owl'} not found"], err
