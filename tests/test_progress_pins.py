"""Mutation round 9 pins for vwbench.progress: the plain-line stage's numbers (hours, rounding,
an overshot or empty total, the latest info kept), a failed stage's live bar taken away, tables
in logs at full width with the console's width restored, and print_plain's verbatim long lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from vwbench.progress import LINE_INTERVAL_S, line_stage, print_plain, print_table
from tests.test_progress_lines import _reporter


def _lines(console: Console) -> list[str]:
    return console.file.getvalue().splitlines()


def _log_console(width: int = 80) -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=width)


def test_a_stage_past_an_hour_shows_minutes_within_the_hour() -> None:
    now = [0.0]
    console = _log_console()
    with line_stage(console, "train", 2, clock=lambda: now[0]) as stage:
        now[0] = 3900.0  # 1 h 5 min
        stage.advance(1)
    assert _lines(console)[1].startswith("train: 1/2 (50%), 1:05:00 elapsed")
    assert _lines(console)[-1] == "train: 1/2, done in 1:05:00"


def test_elapsed_seconds_are_rounded_not_cut() -> None:
    now = [0.0]
    console = _log_console()
    with line_stage(console, "eval", None, clock=lambda: now[0]) as stage:
        now[0] = 59.7
        stage.advance(1)
    assert _lines(console) == ["eval ...", "eval: 1, 0:01:00 elapsed", "eval: done in 0:01:00"]


def test_more_steps_than_the_total_estimate_nothing_left() -> None:
    now = [0.0]
    console = _log_console()
    with line_stage(console, "train", 2, clock=lambda: now[0]) as stage:
        stage.advance(1)
        now[0] = LINE_INTERVAL_S
        stage.advance(2)
    assert _lines(console)[1] == "train: 3/2 (150%), 0:00:30 elapsed, ~0:00:00 left"


def test_a_stage_with_a_total_of_zero_prints_counts_without_a_percentage() -> None:
    now = [0.0]
    console = _log_console()
    with line_stage(console, "plan", 0, clock=lambda: now[0]) as stage:
        now[0] = LINE_INTERVAL_S
        stage.advance(1)
    assert _lines(console) == ["plan ...", "plan: 1, 0:00:30 elapsed", "plan: 1/0, done in 0:00:30"]


def test_a_step_without_info_keeps_the_latest_info() -> None:
    now = [0.0]
    console = _log_console()
    with line_stage(console, "train", 3, clock=lambda: now[0]) as stage:
        stage.advance(1, loss=0.5)
        stage.advance(1)
        now[0] = LINE_INTERVAL_S
        stage.advance(1)
    assert _lines(console)[1] == "train: 3/3 (100%), 0:00:30 elapsed, ~0:00:00 left  loss=0.5"
    assert _lines(console)[-1] == "train: 3/3, done in 0:00:30  loss=0.5"


def test_a_failed_stage_on_a_terminal_takes_its_bar_away() -> None:
    reporter, out = _reporter(terminal=True)
    with pytest.raises(ValueError), reporter.stage("data coco", total=4) as stage:
        stage.advance(1)
        raise ValueError("no such dataset")
    assert "1/4" in out.getvalue()
    assert out.getvalue().endswith("\x1b[1A\x1b[2K")  # the bar's line is erased: the error follows on a clean line
    reporter, ok = _reporter(terminal=True)
    with reporter.stage("data coco", total=4) as stage:
        stage.advance(4)
    assert "4/4" in ok.getvalue() and not ok.getvalue().endswith("\x1b[2K")  # a finished stage keeps its bar


def _wide_table() -> Table:
    table = Table(title="results")
    table.add_column("word file")
    table.add_row("/data/" + "a" * 150 + "/words.safetensors")
    return table


def test_a_table_in_a_log_is_printed_whole_and_the_width_restored() -> None:
    console = _log_console(width=80)
    print_table(console, _wide_table())
    text = console.file.getvalue()
    assert "/data/" + "a" * 150 + "/words.safetensors" in text
    assert console.width == 80


def test_a_table_on_a_terminal_keeps_the_terminal_width() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=60, color_system=None)
    print_table(console, _wide_table())
    assert max(map(len, console.file.getvalue().splitlines())) <= 60


def test_a_long_title_widens_a_narrow_table_instead_of_wrapping() -> None:
    console = _log_console(width=200)
    title = "transfer results for clip->owlv2 on synth-tiny (tier tiny, 2 trials)"
    table = Table(title=title)
    table.add_column("x")
    table.add_row("1")
    print_table(console, table)
    assert title in console.file.getvalue().splitlines()[0]
    assert table.min_width == len(title)


def test_print_plain_keeps_a_long_path_on_one_line_and_brackets_as_text() -> None:
    console = _log_console(width=40)
    path = "/runs/[bold]out[/]/" + "x" * 80 + "/result.json"
    print_plain(console, f"saved {path}")
    assert console.file.getvalue() == f"saved {path}\n"
