"""Where no terminal shows a live bar (a log file, CI, nohup, Slurm), a stage's progress is plain
lines while it runs: rich would draw the bar only once the stage had ended."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from vwbench.progress import LINE_INTERVAL_S, RichReporter


def _reporter(terminal: bool) -> tuple[RichReporter, io.StringIO]:
    reporter, out = RichReporter(), io.StringIO()
    reporter.console = Console(file=out, force_terminal=terminal, width=100)
    return reporter, out


def test_a_long_stage_in_a_log_prints_a_line_each_interval(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    reporter, out = _reporter(terminal=False)
    with reporter.stage("train sd words", total=100) as stage:
        for step in range(100):
            now[0] += 1.0
            stage.advance(1, loss=1.0 / (step + 1))
    lines = out.getvalue().splitlines()
    assert LINE_INTERVAL_S == 30.0
    assert lines[0] == "train sd words ..."
    assert lines[1] == "train sd words: 30/100 (30%), 0:00:30 elapsed, ~0:01:10 left  loss=0.03333"
    assert lines[2].startswith("train sd words: 60/100 (60%), 0:01:00 elapsed, ~0:00:40 left")
    assert lines[-1] == "train sd words: 100/100, done in 0:01:40  loss=0.01"
    assert len(lines) == 5 and "\x1b" not in out.getvalue()


def test_a_stage_without_a_total_says_when_it_is_done(monkeypatch) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    reporter, out = _reporter(terminal=False)
    with reporter.stage("load sd") as stage:
        now[0] += 75.0
        stage.advance(1)
    assert out.getvalue().splitlines() == ["load sd ...", "load sd: 1, 0:01:15 elapsed", "load sd: done in 0:01:15"]


def test_a_failed_stage_leaves_no_done_line_above_the_error() -> None:
    reporter, out = _reporter(terminal=False)
    with pytest.raises(ValueError), reporter.stage("data coco"):
        raise ValueError("no such dataset")
    assert out.getvalue().splitlines() == ["data coco ..."]


def test_a_terminal_still_gets_the_live_bar() -> None:
    reporter, out = _reporter(terminal=True)
    with reporter.stage("train", total=2) as stage:
        stage.advance(2)
    text = out.getvalue()
    assert "━" in text and "2/2" in text and "train ..." not in text


def test_the_time_left_after_a_resume_comes_from_the_steps_run_here(monkeypatch) -> None:
    """A resumed training jumps to its saved step at the first advance; the estimate uses the
    rate of the steps run since then, not the whole stage's."""
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    reporter, out = _reporter(terminal=False)
    with reporter.stage("train", total=1000) as stage:
        stage.advance(900)  # resumed at step 900
        for _ in range(15):
            now[0] += 2.0
            stage.advance(1)
    assert out.getvalue().splitlines()[1] == "train: 915/1000 (91%), 0:00:30 elapsed, ~0:02:50 left"


def test_a_markup_title_widens_its_table_by_its_rendered_length() -> None:
    from rich.table import Table

    from vwbench.progress import print_table

    out = io.StringIO()
    table = Table(title="[bold]short[/bold] \\[x]")
    table.add_column("a")
    table.add_row("1")
    print_table(Console(file=out, width=100), table)
    assert table.min_width == len("short [x]")
