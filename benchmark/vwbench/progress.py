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
    """No progress (library use, tests); messages go to the ``vwbench`` logger, warnings (a
    damaged result ignored, an unpinned checkpoint) at WARNING and the rest at INFO, so that a
    library caller sees what the command line would say."""

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Stage]:
        yield _NullStage()

    def log(self, message: str) -> None:
        import logging

        warning = message.lower().startswith(("warning", "ignoring", "could not"))
        logging.getLogger("vwbench").log(logging.WARNING if warning else logging.INFO, "%s", message)


class RichReporter:
    """One rich progress bar per stage, on stderr so that ``--json`` output stays clean."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Stage]:
        if not self.console.is_terminal:  # a log file, CI, nohup, Slurm: rich would draw the bar only at the end
            with line_stage(self.console, name, total) as stage:
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
                    progress.update(task_id, advance=n, info=_info_text(info))

            try:
                yield _Stage()
            except Exception:  # not Ctrl-C: there the bar shows where the run stopped
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


def _info_text(info: dict[str, float | str]) -> str:
    """A stage's latest info (``loss=0.39``) as its bar and its log lines show it."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())


LINE_INTERVAL_S = 30.0  # where no terminal shows a bar: a progress line at most this often


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextmanager
def line_stage(console: Any, name: str, total: int | None, clock: Callable[[], float] | None = None) -> Iterator[Stage]:
    """A stage drawn as plain lines: one as it starts, at most one every :data:`LINE_INTERVAL_S`
    seconds as it advances (counts, elapsed time, the time left at the rate since its first
    step, the latest info) and one as it ends. A stage that does not advance (loading a model)
    prints only its first and last line."""
    import time

    clock = clock or time.monotonic
    start = last = clock()
    done, text = 0, ""
    first: tuple[int, float] | None = None  # (count, time) at the first advance: a resumed stage jumps ahead there

    def left() -> str:
        if not total or first is None or done <= first[0] or clock() <= first[1]:
            return ""
        rate = (done - first[0]) / (clock() - first[1])
        return f", ~{_duration(max(0, total - done) / rate)} left"

    def line(final: bool) -> str:
        elapsed = clock() - start
        if final:
            progress = (f"{done}/{total}, " if total is not None else "") + f"done in {_duration(elapsed)}"
        else:
            counts = f"{done}/{total} ({100 * done // total}%)" if total else str(done)
            progress = f"{counts}, {_duration(elapsed)} elapsed{left()}"
        return f"{name}: {progress}{'  ' + text if text else ''}"

    class _Stage:
        def advance(self, n: int = 1, **info: float | str) -> None:
            nonlocal done, text, last, first
            done += n
            if first is None:
                first = (done, clock())
            if info:
                text = _info_text(info)
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
    from rich.measure import Measurement
    from rich.text import Text

    if isinstance(table.title, str):  # markup (and its escapes) as rendered, not as written
        table.min_width = max(table.min_width or 0, Text.from_markup(table.title).cell_len)
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
