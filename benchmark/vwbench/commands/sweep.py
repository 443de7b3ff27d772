"""``vwbench sweep --suite NAME``: every task of a suite, one after another, on this machine.

Tasks of one (source, dataset) share their trained words through the word cache, so a suite of
4 datasets x 9 pairs trains 12 word sets, not 36. A task whose result is already stored is not
recomputed (``run_task`` reuses it), so a sweep that was stopped resumes where it was.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.errors import UserError


def sweep_command(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite name (tasks/suites/NAME.yaml), e.g. mini or paper.")],
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Only this dataset (repeatable).")] = None,
    pair: Annotated[Optional[list[str]], typer.Option("--pair", "-p", help="Only this SOURCE->TARGET pair (repeatable).")] = None,
    transfer: Annotated[Optional[list[str]], typer.Option("--transfer", help="Transfer method(s) for the cross-model tasks (repeatable; default: each task's own). In-domain tasks keep theirs.")] = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", help="Only tasks with this target family (repeatable).")] = None,
    executor: Annotated[str, typer.Option(help="Where units run: local (this process).")] = "local",
    steps: Annotated[Optional[int], typer.Option(min=0, help="Training steps per word (default: each task's).")] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per concept (default: each task's).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Output folder for trained words and results.")] = Path("runs"),
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch.")] = None,
    tasks_dir: Annotated[Optional[Path], typer.Option("--tasks-dir", help="Folder of task YAML files.")] = None,
) -> None:
    """Run every task of a suite (resumable: stored results are reused) and print a summary."""
    from rich.console import Console
    from rich.table import Table

    from vwbench.progress import RichReporter
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, run_task

    if executor != "local":
        raise UserError(f"unknown executor {executor!r}; this version runs sweeps with --executor local")
    registry = TaskRegistry.from_dir(tasks_dir)
    tasks = registry.suite(suite)
    if dataset:
        known = {t.dataset.name for t in tasks}
        unknown = [d for d in dataset if d not in known]
        if unknown:
            raise UserError(f"dataset(s) {unknown} are not in suite {suite!r} (it has: {', '.join(sorted(known))})")
        tasks = [t for t in tasks if t.dataset.name in dataset]
    if pair:
        canonical = [p.replace(" ", "") for p in pair]
        unknown = [p for p in canonical if p not in {t.name for t in tasks}]
        if unknown:
            raise UserError(f"pair(s) {unknown} are not in suite {suite!r}; pairs are SOURCE->TARGET of sd, owlv2, clip")
        tasks = [t for t in tasks if t.name in canonical]
    if target:
        tasks = [t for t in tasks if t.target.family in target]
    # words are cached per (source, dataset): run tasks grouped that way so a cold sweep trains
    # each word set once, then evaluates it on the three targets
    tasks.sort(key=lambda t: (t.dataset.name, t.source.family, t.target.family))
    options = RunOptions(steps=steps, trials=trials, seed=seed, device=device, out_dir=out, weights_dir=weights, data_root=data_root, threads=threads)
    console = Console(stderr=True)
    rows = []
    start = time.perf_counter()
    units = [(task, method) for task in tasks for method in ([None] if task.in_domain or not transfer else transfer)]
    for i, (task, method) in enumerate(units, 1):
        label = f" ({method})" if method else ""
        console.print(f"[bold][{i}/{len(units)}][/bold] {task.name} on {task.dataset.name}{label}")
        t0 = time.perf_counter()
        result, path = run_task(task, replace(options, transfer=method), RichReporter())
        rows.append((task, result, path, time.perf_counter() - t0))
    table = Table(title=f"suite {suite}: {len(rows)} runs in {time.perf_counter() - start:.0f} s")
    for column in ("dataset", "task", "transfer", "metric", "mean", "95% CI", "seconds"):
        table.add_column(column)
    for task, result, path, seconds in rows:
        table.add_row(
            task.dataset.name, task.name, result.transfer, task.metric, f"{result.value:.3f}",
            f"[{result.ci95[0]:.3f}, {result.ci95[1]:.3f}]", f"{seconds:.0f}",
        )
    Console().print(table)
