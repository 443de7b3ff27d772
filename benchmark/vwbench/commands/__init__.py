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
