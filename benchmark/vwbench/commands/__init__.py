"""CLI commands whose implementation lives outside ``cli.py`` (one module per area); ``cli.py``
registers them."""

from pathlib import Path
from typing import Annotated, Optional

import typer

# torch.set_num_threads with a huge count crashes the process (a segfault, or an overflow error),
# so every --threads option stops well above any real machine's core count.
MAX_THREADS = 1024

Threads = Annotated[Optional[int], typer.Option(min=1, max=MAX_THREADS, help="CPU threads for torch (fewer is faster on a busy machine).")]

TasksDir = Annotated[Optional[Path], typer.Option("--tasks-dir", help="Folder of task YAML files (default: $VWBENCH_TASKS_DIR, else the repo's tasks/).")]


def print_stored_run_footer(console, result, path: Path, *, reused: bool) -> None:  # noqa: ANN001 - a rich Console, a RunResult
    """The last lines of a run's summary (word or study task): its wall times, labelled as the
    stored run's when ``reused``, then the result file's path whole and verbatim."""
    from vwbench.progress import print_plain
    from vwbench.results.provenance import in_run_order

    times = ", ".join(f"{k} {v:.1f}s" for k, v in in_run_order(result.provenance.wall_time_s).items())
    print_plain(console, f"wall time of the stored run (created {result.provenance.created}): {times}" if reused else f"wall time: {times}")
    print_plain(console, f"result: {path}")
