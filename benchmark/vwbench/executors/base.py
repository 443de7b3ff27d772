"""The executor interface: run a list of picklable jobs somewhere, gather their outcomes.

A :class:`Job` is a module-level function and its arguments; every executor runs it through
:func:`execute_job`, in this process (``local``), on Ray workers (``ray``) or in Slurm jobs
through submitit (``slurm``). A job that raises :class:`UserError` comes back as a failed
:class:`JobOutcome`; :meth:`Executor.run` then cancels what is still outstanding and raises one
line naming the job. Ctrl-C on the driver cancels the outstanding jobs too. Jobs must be
idempotent (a sweep's jobs skip what is stored), so re-running a stopped sweep resumes it.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vwbench.errors import UserError
from vwbench.progress import NullReporter, Reporter, line_stage, print_plain


@dataclass(frozen=True)
class Job:
    """One piece of work: ``fn(*args, reporter=...)``; ``fn`` must be importable by name."""

    label: str
    fn: Callable[..., Any]
    args: tuple = ()


@dataclass
class JobOutcome:
    """What a job returned (or the one-line error it raised), with where and how long it ran."""

    label: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    host: str = ""
    logs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutorSettings:
    """Everything the command line says about where jobs run (each executor reads its part)."""

    workers: int | None = None  # jobs at once (ray: default from the cluster's resources)
    threads: int | None = None  # torch CPU threads per job (and CPUs reserved per job)
    address: str | None = None  # ray: the cluster to connect to (None: start a local instance)
    log_dir: Path = Path("runs/.executor")  # slurm: submitit's job folders
    slurm_partition: str | None = None
    slurm_time_min: int = 240
    slurm_gpus: int = 0
    slurm_cpus: int | None = None
    slurm_cluster: str = "slurm"  # submitit's cluster: slurm, or local / debug to try it here


class RecordingReporter:
    """Forwards to another reporter and keeps the log lines (they travel back with the outcome)."""

    def __init__(self, inner: Reporter | None = None) -> None:
        self.inner = inner or NullReporter()
        self.logs: list[str] = []

    def stage(self, name: str, total: int | None = None):
        return self.inner.stage(name, total)

    def log(self, message: str) -> None:
        self.logs.append(message)
        self.inner.log(message)


def execute_job(job: Job, threads: int | None = None, reporter: Reporter | None = None) -> JobOutcome:
    """Run ``job`` on this worker (what every executor calls, remotely or here)."""
    if threads:
        import torch

        # small models on shared cores run faster on few threads; a worker owns only its share
        torch.set_num_threads(threads)
    from vwbench.runner import torch_run_state

    recorder = RecordingReporter(reporter)
    start = time.perf_counter()
    try:
        with torch_run_state():
            value = job.fn(*job.args, reporter=recorder)
    except UserError as exc:
        return JobOutcome(job.label, error=str(exc), seconds=time.perf_counter() - start, host=socket.gethostname(), logs=recorder.logs)
    return JobOutcome(job.label, value=value, seconds=time.perf_counter() - start, host=socket.gethostname(), logs=recorder.logs)


class Executor(ABC):
    """Runs jobs; use as a context manager so that what it started is stopped."""

    name: ClassVar[str]
    #: True when jobs run elsewhere: the driver draws one progress bar per phase; False when they
    #: run in this process and draw their own bars (rich allows one live display at a time)
    remote: ClassVar[bool] = True

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def slots(self) -> int:
        """How many jobs run at once (a sweep splits its work into at least this many jobs)."""

    @abstractmethod
    def _execute(self, jobs: list[Job], on_start: Callable[[int], None]) -> Iterator[tuple[int, JobOutcome]]:
        """Submit ``jobs``; yield ``(index, outcome)`` as each one finishes (an executor that
        knows when a job starts calls ``on_start(index)``)."""

    def cancel_outstanding(self) -> None:
        """Cancel the jobs submitted by the current :meth:`run` that have not finished."""

    def close(self) -> None:
        """Stop what this executor started (a local Ray instance, ...)."""

    def describe(self) -> str:
        return f"{self.name} executor, {self.slots} worker(s)"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: list[Job], title: str, console: Any = None, on_done: Callable[[Job, JobOutcome], None] | None = None) -> list[JobOutcome]:
        """Run ``jobs`` and return their outcomes in job order (``on_done`` is told of each as it
        finishes). The first job that failed with a :class:`UserError` stops the run: the others
        are cancelled and the error is raised as one line naming the job. Finished jobs keep what
        they stored."""
        outcomes: list[JobOutcome | None] = [None] * len(jobs)
        if not jobs:
            return []
        with _progress(console, title, jobs, live=self.remote) as (started, advance):
            try:
                for index, outcome in self._execute(jobs, started):
                    outcomes[index] = outcome
                    if outcome.error is not None:
                        raise UserError(f"{outcome.label}: {outcome.error}")
                    advance(outcome)
                    if on_done is not None:
                        on_done(jobs[index], outcome)
            except BaseException:
                self.cancel_outstanding()
                raise
        return [o for o in outcomes if o is not None]


@contextmanager
def _progress(console: Any, title: str, jobs: list[Job], *, live: bool) -> Iterator[tuple[Callable[[int], None], Callable[[JobOutcome], None]]]:
    """Yields ``(started, finished)`` callbacks: for remote jobs one bar per phase and a line per
    finished job; for in-process jobs (which draw their own bars) a line as each one starts."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    if not live:
        def started(index: int) -> None:
            console.print(f"[bold]{escape(title)} [{index + 1}/{len(jobs)}][/bold] {escape(jobs[index].label)}", soft_wrap=True)

        yield started, lambda outcome: None
        return

    def report(outcome: JobOutcome, out: Any) -> None:
        where = f" on {outcome.host}" if outcome.host else ""
        print_plain(out, f"  done: {outcome.label} ({outcome.seconds:.1f} s{where})")
        for message in outcome.logs:
            if message.startswith("warning"):
                print_plain(out, f"  {message}")

    if not console.is_terminal:  # a log: rich would draw the bar only at the end
        with line_stage(console, title, len(jobs)) as stage:
            def finished_line(outcome: JobOutcome) -> None:
                report(outcome, console)
                stage.advance()

            yield (lambda index: None), finished_line
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(title, total=len(jobs))

        def finished(outcome: JobOutcome) -> None:
            report(outcome, progress.console)
            progress.update(bar, advance=1)

        yield (lambda index: None), finished
