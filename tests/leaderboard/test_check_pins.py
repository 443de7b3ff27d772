"""Pins of `vwbench check` behaviour that users rely on: which tolerance a stored run is held to,
what an interrupted check's folder is keyed on, and the exact drop table (mutation-testing round 4)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from vwbench.errors import UserError

from .test_check import SUBSET
from .test_leaderboard import make_board


@pytest.fixture(scope="module")
def pin_board(tiny_results, tmp_path_factory) -> dict:
    """A leaderboard whose check subset is one run (clip->owlv2 with lstsq), tolerance 0.01."""
    out = tmp_path_factory.mktemp("pinboard") / "board"
    return make_board(tiny_results / "results", out, "--check", SUBSET[0], "--tolerance", "0.01")


def _fake_runs(monkeypatch, values: list[float]) -> list:
    """``run_task`` answers the given values in turn (no model runs); returns the options it saw."""
    import vwbench.runner as runner

    seen: list = []

    def run_task(spec, options, reporter=None):
        seen.append(options)
        return SimpleNamespace(result=SimpleNamespace(value=values[len(seen) - 1]))

    monkeypatch.setattr(runner, "run_task", run_task)
    return seen


def test_an_entry_tolerance_overrides_the_section_tolerance(pin_board, tiny_tasks, tmp_path, monkeypatch) -> None:
    from vwbench.leaderboard.check import run_check

    board = json.loads(json.dumps(pin_board))
    entry = board["check"]["entries"][0]
    base = entry["value"]
    board["check"]["tolerance"] = 0.01
    board["check"]["entries"] = [{**entry, "tolerance": 0.2}, {**entry, "tolerance": 0.0}, dict(entry)]
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(board))
    _fake_runs(monkeypatch, [base - 0.1, base - 0.005, base - 0.005])
    rows = run_check(path, tiny_tasks, None, log=lambda _: None)
    assert [r.tolerance for r in rows] == [0.2, 0.0, 0.01]
    assert [r.failed for r in rows] == [False, True, False]  # 0.1 <= 0.2; 0.005 > 0; 0.005 <= 0.01


def test_a_zero_tolerance_is_valid_and_only_a_real_change_fails(tiny_results) -> None:
    from vwbench.leaderboard.check import CheckRow, _check_problem, _valid_tolerance

    assert _valid_tolerance(0) and _valid_tolerance(0.0)
    assert not _valid_tolerance(-1e-12) and not _valid_tolerance(True) and not _valid_tolerance(float("nan"))
    assert not CheckRow("d", "t", "m", baseline=0.5, value=0.5, tolerance=0.0).failed
    assert CheckRow("d", "t", "m", baseline=0.5, value=0.7, tolerance=0.0).failed  # a rise fails too
    assert CheckRow("d", "t", "m", baseline=0.5, value=0.49, tolerance=0.0).failed
    entry = {"dataset": "d", "task": "clip->owlv2", "transfer": "lstsq", "steps": 0, "n_trials": 1, "seed": 0, "value": 0.5}
    assert _check_problem({"tolerance": 0, "entries": [entry]}) is None
    assert _check_problem({"tolerance": 0.1, "entries": [{**entry, "tolerance": 0}]}) is None


def test_the_resume_fingerprint_ignores_values_and_tolerances_only(pin_board) -> None:
    from vwbench.leaderboard.check import _fingerprint

    check = json.loads(json.dumps(pin_board["check"]))
    before = _fingerprint(check)
    check["entries"][0]["value"] += 0.3
    check["entries"][0]["tolerance"] = 0.5
    check["tolerance"] = 0.9
    check["entries"][0]["result"] = "somewhere-else"
    assert _fingerprint(check) == before  # a re-made baseline of the same runs resumes the same --out
    for field, value in (("steps", 7), ("n_trials", 5), ("seed", 3), ("transfer", "ridge"), ("transfer_path", "sub/")):
        other = json.loads(json.dumps(check))
        other["entries"][0][field] = value
        assert _fingerprint(other) != before, field
    assert _fingerprint({**check, "device": "cuda"}) != before


def test_the_drop_table_lists_only_the_failed_rows_in_order() -> None:
    from vwbench.leaderboard.check import CheckRow, format_drops

    rows = [
        CheckRow("synth-tiny", "clip->owlv2", "lstsq", 0.5, 0.4, 0.01),
        CheckRow("synth-tiny", "clip->clip", "identity", 0.5, 0.495, 0.01),
        CheckRow("synth-tiny", "owlv2->clip", "anchor", 0.75, 0.5, 0.1),
    ]
    text = format_drops(rows)
    lines = text.splitlines()
    assert lines[0] == ("2 of 3 checked values moved beyond their tolerance (a rise fails too: "
                        "commit a new baseline with a change that moves numbers on purpose):")
    assert lines[2].split() == ["dataset", "task", "transfer", "baseline", "now", "change", "tolerance"]
    assert set(lines[3]) <= {"-", " "}
    assert [line.split() for line in lines[4:]] == [
        ["synth-tiny", "clip->owlv2", "lstsq", "0.5000", "0.4000", "-0.1000", "0.0100"],
        ["synth-tiny", "owlv2->clip", "anchor", "0.7500", "0.5000", "-0.2500", "0.1000"],
    ]


def test_a_finished_marker_is_written_and_refuses_reuse(pin_board, tiny_tasks, tmp_path, monkeypatch) -> None:
    from vwbench.leaderboard.check import MARKER, _fingerprint, run_check

    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(pin_board))
    out = tmp_path / "out"
    _fake_runs(monkeypatch, [pin_board["check"]["entries"][0]["value"]])
    run_check(path, tiny_tasks, out, log=lambda _: None)
    assert json.loads((out / MARKER).read_text()) == {"vwbench_check": 1, "runs": _fingerprint(pin_board["check"]), "finished": True}
    with pytest.raises(UserError, match="finished"):
        run_check(path, tiny_tasks, out, log=lambda _: None)


def test_a_builtin_transfer_path_is_not_looked_up_as_a_file(pin_board, tiny_tasks, tmp_path, monkeypatch) -> None:
    from vwbench.leaderboard.check import run_check

    board = json.loads(json.dumps(pin_board))
    board["check"]["entries"][0]["transfer_path"] = "ridge"  # a built-in method's name, not a folder
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(board))
    seen = _fake_runs(monkeypatch, [board["check"]["entries"][0]["value"]])
    monkeypatch.chdir(tmp_path)
    rows = run_check(path, tiny_tasks, None, log=lambda _: None)
    assert len(rows) == 1 and seen[0].transfer == "ridge" and seen[0].threads == 1 and seen[0].device == "cpu"


def test_a_value_that_rises_beyond_the_tolerance_fails_too() -> None:
    """A metric that scores better without a new baseline (mAP@.5 reported as mAP: +0.2 on
    synth-voc) is a regression of the harness, not an improvement of the method."""
    from vwbench.leaderboard.check import CheckRow, format_drops

    rise, edge, drop = (CheckRow("synth-voc", "clip->owlv2", "lstsq", 0.2, 0.41, 0.02), CheckRow("synth-voc", "clip->clip", "identity", 0.5, 0.52, 0.02),
                        CheckRow("synth-voc", "owlv2->owlv2", "identity", 0.55, 0.5, 0.02))
    assert (rise.failed, rise.verdict) == (True, "RISE") and (drop.failed, drop.verdict) == (True, "DROP")
    assert not edge.failed and edge.verdict == ""  # exactly the tolerance (0.52 - 0.5 is 0.020000000000000018) passes
    lines = format_drops([rise, edge, drop]).splitlines()
    assert lines[0].startswith("2 of 3 checked values moved beyond their tolerance")
    assert [line.split()[-2] for line in lines[4:]] == ["+0.2100", "-0.0500"]
