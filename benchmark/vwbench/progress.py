"""Progress reporting that the runner calls and the CLI draws (rich bars) or tests ignore."""

from __future__ import annotations

from collections.abc import Iterator
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

            yield _Stage()
            if total is None:
                progress.update(task_id, total=1, completed=1)

    def log(self, message: str) -> None:
        """``message`` verbatim (no rich markup) on one line, however long (paths stay whole)."""
        print_plain(self.console, message)


def print_plain(console: Any, text: str) -> None:
    """``text`` as it is on ``console`` (a rich Console): square brackets are not markup, and a
    long line is not wrapped at the terminal's width (so a path can be copied whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)
