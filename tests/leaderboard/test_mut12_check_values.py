"""Mutation-testing round 12: `vwbench check`'s baseline values. A task entry's value may be any
share in [0, 1], both ends included; a study's headline is not bound to that range; and a
library call of `run_check` reports on the `vwbench` logger at INFO."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from vwbench.errors import UserError


def _board(tmp_path, **entry):
    e = {"dataset": "synth-voc", "task": "clip->clip", "transfer": "identity", "steps": 1, "n_trials": 1, "seed": 0, "value": 0.5, **entry}
    path = tmp_path / "baseline.json"
    from vwbench.leaderboard.build import SCHEMA

    path.write_text(json.dumps({"schema": SCHEMA, "check": {"tolerance": 0.01, "device": "cpu", "entries": [e]}}))
    return path


@pytest.mark.parametrize("value", [0, 1, 1.0, 0.0])
def test_a_task_value_at_either_end_of_the_unit_range_is_valid(value) -> None:
    from vwbench.leaderboard.check import _check_problem

    entry = {"dataset": "synth-voc", "task": "clip->clip", "transfer": "identity", "steps": 1, "n_trials": 1, "seed": 0, "value": value}
    assert _check_problem({"tolerance": 0.01, "device": "cpu", "entries": [entry]}) is None


def test_a_study_headline_outside_the_unit_range_is_valid() -> None:
    from vwbench.leaderboard.check import _check_problem

    base = {"dataset": "synth-voc", "task": "clip->clip", "transfer": "identity", "steps": 1, "n_trials": 1, "seed": 0, "value": 3.5}
    assert _check_problem({"tolerance": 0.01, "device": "cpu", "entries": [{**base, "study": "align"}]}) is None
    assert "value 3.5 is outside [0, 1]" in _check_problem({"tolerance": 0.01, "device": "cpu", "entries": [base]})


def test_run_check_reports_to_the_vwbench_logger_by_default(tmp_path, monkeypatch, caplog) -> None:
    import vwbench.runner as runner
    from vwbench.leaderboard.check import run_check

    monkeypatch.setattr(runner, "run_task", lambda spec, options, reporter=None: SimpleNamespace(result=SimpleNamespace(value=0.5)))
    with caplog.at_level(logging.INFO, logger="vwbench"):
        rows = run_check(_board(tmp_path), None, None)
    assert len(rows) == 1 and not rows[0].failed
    lines = [r.getMessage() for r in caplog.records if r.name == "vwbench" and r.levelno == logging.INFO]
    assert any("baseline 0.5000, now 0.5000" in line for line in lines), lines
