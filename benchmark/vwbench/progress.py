"""Progress reporting that the runner calls and the CLI draws (rich bars) or tests ignore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Stage(Protocol):
    def advance(self, n: int = 1, **info: float | str) -> None: ...


class Reporter(Protocol):
    def stage(self, name: str, total: int | None = None) -> Iterator[Stage]: ...

    def log(self, message: str) -> None: ...


class _NullStage:
    def advance(self, n: int = 1, **info: float | str) -> None:
        pass


class NullReporter:
    """Reports nothing (library use, tests)."""

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Stage]:
        yield _NullStage()

    def log(self, message: str) -> None:
        pass


class RichReporter:
    """One rich progress bar per stage, on stderr so that ``--json`` output stays clean."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Stage]:
        if not self.console.is_terminal:  # a log file, CI, nohup, Slurm: rich would draw the bar only at the end
            with _line_stage(self.console, name, total) as stage:
                yield stage
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        # markup=False: stage names and infos hold paths and names users chose, which may hold
        # square brackets ("[/x]" would make rich raise)
        columns = [SpinnerColumn(), TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}", markup=False)]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(name, total=total, info="")

            class _Stage:
                def advance(self, n: int = 1, **info: float | str) -> None:
                    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
                    progress.update(task_id, advance=n, info=text)

            try:
                yield _Stage()
            except Exception:
                progress.live.transient = True  # a failed stage's bar is not left above the error line
                raise
            if total is None:
                progress.update(task_id, total=1, completed=1)

    def log(self, message: str) -> None:
        """``message`` verbatim (no rich markup) on one line, however long (paths stay whole)."""
        print_plain(self.console, message)


def print_plain(console: Any, text: str) -> None:
    """``text`` as it is on ``console`` (a rich Console): square brackets are not markup, and a
    long line is not wrapped at the terminal's width (so a path can be copied whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


LINE_INTERVAL_S = 30.0  # where no terminal shows a bar: a progress line at most this often


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextmanager
def _line_stage(console: Any, name: str, total: int | None, clock: Callable[[], float] | None = None) -> Iterator[Stage]:
    """A stage drawn as plain lines: one as it starts, one every :data:`LINE_INTERVAL_S` seconds
    while it runs (counts, elapsed time, an estimate of the time left, the latest info) and one
    as it ends."""
    import time

    clock = clock or time.monotonic
    start = last = clock()
    done, text = 0, ""

    def line(final: bool) -> str:
        elapsed = clock() - start
        counts = f"{done}/{total}, " if total is not None else ""
        if final:
            timing = f"done in {_duration(elapsed)}"
        else:
            counts = f"{done}/{total} ({100 * done // total}%), " if total else f"{done}, "
            timing = f"{_duration(elapsed)} elapsed" + (f", ~{_duration(elapsed / done * max(0, total - done))} left" if total and done else "")
        return f"{name}: {counts}{timing}{'  ' + text if text else ''}"

    class _Stage:
        def advance(self, n: int = 1, **info: float | str) -> None:
            nonlocal done, text, last
            done += n
            if info:
                text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
            if clock() - last >= LINE_INTERVAL_S:
                last = clock()
                print_plain(console, line(final=False))

    print_plain(console, f"{name} ...")
    yield _Stage()  # a stage that fails ends without its "done" line: the error follows
    print_plain(console, line(final=True))


def print_table(console: Any, table: Any) -> None:
    """``console.print(table)`` (rich); where the console is no terminal (a log, a pipe: rich
    assumes 80 columns) the table gets the width it needs, so no name in it is cut or wrapped.
    A title longer than the table widens it instead of wrapping."""
    from rich.cells import cell_len
    from rich.measure import Measurement

    if isinstance(table.title, str):
        table.min_width = max(table.min_width or 0, cell_len(table.title))
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
    width = console.width
    try:
        console.width = max(width, needed)
        console.print(table)
    finally:
        console.width = width
