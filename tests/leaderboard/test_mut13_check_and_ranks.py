"""Mutation-testing round 13 pins of today's leaderboard changes: the check's boundary at exactly
the tolerance plus rounding, its log line's verdict and tolerance message, which row's CI is the
best's when two values read the same, and the markdown's words for ranks and the ceiling."""

from __future__ import annotations

import json

import pytest

from vwbench.errors import UserError
from vwbench.leaderboard.build import _ranks

from .test_check_pins import _fake_runs, pin_board  # noqa: F401 (a fixture)


def test_a_change_of_exactly_the_tolerance_plus_the_rounding_slack_passes() -> None:
    from vwbench.leaderboard.check import CheckRow

    assert not CheckRow("d", "t", "m", baseline=0.0, value=1e-9, tolerance=0.0).failed
    assert CheckRow("d", "t", "m", baseline=0.0, value=2e-9, tolerance=0.0).failed


def test_a_bad_tolerance_is_described_as_a_change_either_way(tiny_results) -> None:
    from vwbench.leaderboard.check import check_section

    with pytest.raises(UserError, match=r"^--tolerance -1: give a finite number >= 0 \(an absolute change in metric units\)$"):
        check_section({}, ["all"], -1)


def test_the_check_log_says_rise_for_a_value_above_the_tolerance(pin_board, tiny_tasks, tmp_path, monkeypatch) -> None:  # noqa: F811
    from vwbench.leaderboard.check import run_check

    board = json.loads(json.dumps(pin_board))
    entry = board["check"]["entries"][0]
    board["check"]["entries"] = [dict(entry), dict(entry)]
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(board))
    _fake_runs(monkeypatch, [entry["value"] + 0.1, entry["value"] - 0.1])
    lines: list[str] = []
    run_check(path, tiny_tasks, None, log=lines.append)
    verdicts = [line.split("  ")[-1] for line in lines if "baseline" in line and "now" in line]
    assert verdicts == ["RISE (> tolerance 0.0100)", "DROP (> tolerance 0.0100)"], lines


def test_the_best_ci_is_the_highest_value_s_when_two_values_read_the_same() -> None:
    """0.5001 and 0.5004 share rank 1; the CI ties are measured from the higher one's (listed second)."""
    lower = {"value": 0.5001, "ci95": [0.45, 0.55]}
    higher = {"value": 0.5004, "ci95": [0.49, 0.60]}
    below = {"value": 0.3, "ci95": [0.2, 0.47]}  # reaches the lower one's CI (0.45), not the higher one's (0.49)
    _ranks([lower, higher, below])
    assert (lower["rank"], higher["rank"], below["rank"]) == (1, 1, 3)
    assert below["tied_with_best"] is False and lower["tied_with_best"] is True


def test_the_second_row_below_the_first_ranks_second() -> None:
    rows = [{"value": 0.9}, {"value": 0.8}, {"value": 0.8}]
    _ranks(rows)
    assert [r["rank"] for r in rows] == [1, 2, 2]


def test_the_markdown_says_ranks_compare_values_as_shown_and_the_ceiling_is_not_ranked(pin_board) -> None:  # noqa: F811
    from vwbench.leaderboard.markdown import render_markdown

    text = " ".join(render_markdown(pin_board).split())
    assert "Ranks are by value as shown, to 3 decimals (values that read the same share a rank)." in text
    assert "the in-domain words' row is the ceiling, not ranked:" in text


def test_values_that_differ_in_the_third_decimal_do_not_share_a_rank() -> None:
    rows = [{"value": 0.331}, {"value": 0.334}, {"value": 0.3344}]
    _ranks(rows)
    assert [r["rank"] for r in rows] == [3, 1, 1]
