"""Pins of the executor layer's plumbing (mutation-testing round 7): the local executor's threads
and start lines, the outcome callbacks, the recording reporter and the remote progress lines."""

from __future__ import annotations

import io
from contextlib import nullcontext

import pytest
from rich.console import Console

from tests.executors.jobs import refuse, square
from vwbench.errors import UserError
from vwbench.executors import ExecutorSettings, Job, execute_job, make_executor
from vwbench.executors.base import Executor, JobOutcome, RecordingReporter


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False), buffer


@pytest.fixture
def thread_counts(monkeypatch) -> list[int]:
    import torch

    counts: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    return counts


def test_the_local_executor_runs_each_job_on_its_threads(thread_counts) -> None:
    with make_executor("local", ExecutorSettings(threads=3)) as executor:
        executor.run([Job("a", square, (2,)), Job("b", square, (3,))], "demo")
    assert thread_counts == [3, 3]


def test_execute_job_sets_threads_only_when_given(thread_counts) -> None:
    execute_job(Job("a", square, (2,)))
    execute_job(Job("b", square, (2,)), threads=5)
    assert thread_counts == [5]


def test_the_local_executor_says_which_job_starts(thread_counts) -> None:
    console, buffer = _console()
    with make_executor("local") as executor:
        executor.run([Job("first", square, (2,)), Job("second", square, (3,))], "train words", console)
    assert buffer.getvalue().splitlines() == ["train words [1/2] first", "train words [2/2] second"]


def test_progress_lines_go_to_stderr_by_default(capsys) -> None:
    with make_executor("local") as executor:
        executor.run([Job("only", square, (2,))], "tasks")
    out, err = capsys.readouterr()
    assert out == "" and "tasks [1/1] only" in err


def test_on_done_hears_of_each_job_in_order_with_its_outcome() -> None:
    heard: list = []
    with make_executor("local") as executor:
        outcomes = executor.run([Job(f"j{v}", square, (v,)) for v in (1, 2, 3)], "demo", _console()[0], lambda job, outcome: heard.append((job.label, outcome.value)))
    assert heard == [("j1", 1), ("j2", 4), ("j3", 9)] and [o.label for o in outcomes] == ["j1", "j2", "j3"]


class _Inner:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.stages: list = []

    def log(self, message: str) -> None:
        self.messages.append(message)

    def stage(self, name: str, total=None):
        self.stages.append((name, total))
        return nullcontext()


def test_the_recording_reporter_keeps_and_forwards_logs_and_stages() -> None:
    inner = _Inner()
    recorder = RecordingReporter(inner)
    recorder.log("hello")
    with recorder.stage("train", 7):
        pass
    assert recorder.logs == ["hello"] and inner.messages == ["hello"] and inner.stages == [("train", 7)]
    outcome = execute_job(Job("sq", square, (4,)), reporter=inner)
    assert outcome.logs == ["squared 4"] and inner.messages[-1] == "squared 4"


class _Remote(Executor):
    """A remote-style executor that yields prepared outcomes in reverse order."""

    name = "fake"

    def __init__(self, outcomes: list[JobOutcome]) -> None:
        super().__init__(ExecutorSettings())
        self.outcomes = outcomes
        self.cancelled = 0

    @property
    def slots(self) -> int:
        return 2

    def _execute(self, jobs, on_start):
        for index in reversed(range(len(jobs))):
            yield index, self.outcomes[index]

    def cancel_outstanding(self) -> None:
        self.cancelled += 1


def test_remote_progress_prints_each_finished_job_and_its_warnings_in_job_order() -> None:
    outcomes = [JobOutcome("a", value=1, seconds=1.25, host="h1", logs=["warning: slow", "chatter"]), JobOutcome("b", value=2, seconds=2.0)]
    console, buffer = _console()
    executor = _Remote(outcomes)
    assert executor.run([Job("a", square), Job("b", square)], "tasks", console) == outcomes  # job order, not finishing order
    text = buffer.getvalue()
    assert "  done: b (2.0 s)" in text and "  done: a (1.2 s on h1)" in text
    assert "  warning: slow" in text and "chatter" not in text
    assert executor.cancelled == 0


def test_a_failed_job_cancels_the_rest_and_names_itself() -> None:
    outcomes = [JobOutcome("a", value=1), JobOutcome("b", error="no good")]
    executor = _Remote(outcomes)
    with pytest.raises(UserError, match=r"^b: no good$"):
        executor.run([Job("a", square), Job("b", square)], "tasks", _console()[0])
    assert executor.cancelled == 1


def test_a_user_error_in_a_local_job_stops_the_run_before_on_done() -> None:
    heard: list = []
    with make_executor("local") as executor, pytest.raises(UserError, match="^bad: value 3"):
        executor.run([Job("bad", refuse, (3,))], "demo", _console()[0], lambda job, outcome: heard.append(job))
    assert heard == []


def test_remote_progress_in_a_log_prints_a_start_line_and_a_done_line_with_the_count() -> None:
    """Where stderr is no terminal (a sweep's log), rich would draw the phase's bar only as it
    ends: the phase prints plain lines instead, its start and its end with the count."""
    outcomes = [JobOutcome("a", value=1, seconds=1.0), JobOutcome("b", value=2, seconds=2.0)]
    console, buffer = _console()
    _Remote(outcomes).run([Job("a", square), Job("b", square)], "train words", console)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "train words ..." and lines[1:3] == ["  done: b (2.0 s)", "  done: a (1.0 s)"]
    assert lines[3].startswith("train words: 2/2, done in 0:00:0") and len(lines) == 4
