"""``vwbench sweep --suite NAME``: every task of a suite, on this machine, a Ray cluster or Slurm.

A sweep is two phases of jobs (:mod:`vwbench.executors.sweep_jobs`): the words the suite needs,
as work units grouped by (source, dataset) and trained in chunks, then one result per (task,
transfer). Tasks of one (source, dataset) share their words, so a suite of 4 datasets x 9 pairs
trains 12 word sets, not 36. Stored words and results are skipped, so a stopped sweep resumes
where it was. ``--executor local`` (the default) runs everything in this process and trains each
word set in one batch inside its first task (one file per set); ``ray`` and ``slurm`` spread the
word chunks and the results over workers (one file per word).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import MAX_THREADS, TasksDir
from vwbench.errors import UserError


def sweep_command(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite name (tasks/suites/NAME.yaml), e.g. mini or paper.")],
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Only this dataset (repeatable).")] = None,
    pair: Annotated[Optional[list[str]], typer.Option("--pair", "-p", help="Only this SOURCE->TARGET pair (repeatable).")] = None,
    transfer: Annotated[Optional[list[str]], typer.Option("--transfer", help="Transfer method(s) for the cross-model tasks (repeatable; default: each task's own). In-domain tasks keep theirs.")] = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", help="Only tasks with this target family (repeatable).")] = None,
    executor: Annotated[str, typer.Option(help="Where jobs run: local (this process), ray (a Ray cluster, see --address) or slurm (through submitit).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="ray: the cluster's address (HOST:PORT, ray://HOST:PORT or auto); default: start a local Ray instance.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="ray/slurm: jobs at once (ray default: the cluster's GPUs, else CPUs / --threads; slurm: 4, or 1 with --slurm-local).")] = None,
    words_per_job: Annotated[Optional[int], typer.Option("--words-per-job", min=1, help="Words one job trains together (default: local, a whole word set; ray/slurm, each word set split into one chunk per worker).")] = None,
    slurm_partition: Annotated[Optional[str], typer.Option("--slurm-partition", help="slurm: the partition to submit to.")] = None,
    slurm_time: Annotated[int, typer.Option("--slurm-time", min=1, help="slurm: time limit per job, in minutes.")] = 240,
    slurm_gpus: Annotated[int, typer.Option("--slurm-gpus", min=0, help="slurm: GPUs per job.")] = 0,
    slurm_cpus: Annotated[Optional[int], typer.Option("--slurm-cpus", min=1, help="slurm: CPUs per job (default: --threads, else 1).")] = None,
    slurm_local: Annotated[bool, typer.Option("--slurm-local", help="slurm: run the jobs as subprocesses on this machine through submitit's local executor (no Slurm needed).")] = False,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Training steps per word (default: each task's).")] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per concept (default: each task's).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Output folder for trained words and results (shared by all workers).")] = Path("runs"),
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, max=MAX_THREADS, help="CPU threads for torch (per job on ray/slurm, default 1 there).")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Run every task of a suite (resumable: stored words and results are reused) and print a summary."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vwbench.executors import EXECUTORS, ExecutorSettings, make_executor
    from vwbench.executors.sweep_jobs import journal_outcome, plan_sweep
    from vwbench.progress import print_plain, print_table
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions

    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; use one of: {', '.join(EXECUTORS)}")
    if workers is not None and executor == "local":
        raise UserError("--workers applies to --executor ray or slurm; the local executor runs one job at a time")
    if address is not None and executor != "ray":
        raise UserError(f"--address applies to --executor ray (not {executor}); add --executor ray or drop --address")
    slurm_given = [name for name, value in (("--slurm-partition", slurm_partition), ("--slurm-cpus", slurm_cpus), ("--slurm-local", slurm_local or None),
                                             ("--slurm-gpus", slurm_gpus or None), ("--slurm-time", None if slurm_time == 240 else slurm_time)) if value is not None]
    if slurm_given and executor != "slurm":
        raise UserError(f"{', '.join(slurm_given)} {'applies' if len(slurm_given) == 1 else 'apply'} to --executor slurm (not {executor}); add --executor slurm or drop them")
    tasks = _select(TaskRegistry.from_dir(tasks_dir), suite, dataset, pair, target)
    from vwbench.results.atomic import output_dir
    from vwbench.runner import check_run_options

    # workers elsewhere see the same files only through absolute paths
    options = RunOptions(steps=steps, trials=trials, seed=seed, device=device, out_dir=out.resolve(), threads=threads,
                         weights_dir=weights.resolve() if weights else None, data_root=data_root.resolve() if data_root else None)
    for task in tasks:  # a bad --steps/--trials/--seed, device or transfer leaves no --out folder behind
        for method in [None] if task.in_domain or not transfer else transfer:
            check_run_options(task, replace(options, transfer=method), runs_here=executor == "local" or slurm_local)
    with output_dir(out, probe=False):  # a bad dataset found later leaves no empty --out either
        settings = ExecutorSettings(workers=workers, threads=threads, address=address, log_dir=out.resolve() / ".executor",
                                    slurm_partition=slurm_partition, slurm_time_min=slurm_time, slurm_gpus=slurm_gpus, slurm_cpus=slurm_cpus,
                                    slurm_cluster="local" if slurm_local else "slurm")
        console = Console(stderr=True)
        start = time.perf_counter()
        with make_executor(executor, settings) as runner:
            print_plain(console, f"sweep {suite}: {len(tasks)} task(s) on the {runner.describe()}")
            plan = plan_sweep(tasks, transfer, options, slots=runner.slots, words_per_job=words_per_job,
                              split_groups=runner.remote, word_phase=runner.remote or words_per_job is not None)
            console.print(f"words: {plan.word_units} needed, {plan.stored_units} stored (skipped), {plan.units_to_train} to train"
                          + (f" in {len(plan.word_jobs)} job(s)" if plan.word_jobs else " inside their first task" if plan.units_to_train else ""))
            journal = journal_outcome if runner.remote else None  # local jobs note their files themselves
            from vwbench.results import journal as saved_files

            saved_files.jobs_elsewhere(out.resolve() if runner.remote else None)
            try:
                runner.run(plan.word_jobs, "train words", console, journal)
                outcomes = runner.run(plan.result_jobs, "tasks", console, journal)
            except Exception:  # a job's error: nothing is interrupted, so no later command may hear of these jobs
                saved_files.jobs_elsewhere(None)
                raise
            # (an interrupt, Ctrl-C or SIGTERM, is no Exception: it keeps the note for the line it prints)
            saved_files.jobs_elsewhere(None)  # every job has ended: what they saved is recorded
    reused = sum(o.value.reused for o in outcomes)
    console.print(f"results: {len(outcomes) - reused} computed, {reused} reused (stored)")
    table = Table(title=escape(f"suite {suite}: {len(outcomes)} runs in {time.perf_counter() - start:.0f} s"))
    for column in ("dataset", "task", "transfer", "metric", "mean", "95% CI", "seconds"):
        table.add_column(column)
    for job, outcome in zip(plan.result_jobs, outcomes):
        task, result = job.args[0], outcome.value.result
        table.add_row(
            *map(escape, (task.dataset.name, task.name, result.transfer, task.metric)), f"{result.value:.3f}",
            f"[{result.ci95[0]:.3f}, {result.ci95[1]:.3f}]", f"{outcome.seconds:.0f}",
        )
    print_table(Console(), table)


def _select(registry, suite: str, dataset: list[str] | None, pair: list[str] | None, target: list[str] | None) -> list:
    """The suite's tasks, filtered by the command line, grouped by (dataset, source, target)."""
    from vwbench.registry import normalize_task_name

    tasks = registry.suite(suite)
    if dataset:
        dataset = [registry.dataset(d).name for d in dataset]  # aliases and spelling as `vwbench run` reads them
        known = {t.dataset.name for t in tasks}
        unknown = [d for d in dataset if d not in known]
        if unknown:
            raise UserError(f"dataset(s) {unknown} are not in suite {suite!r} (it has: {', '.join(sorted(known))})")
        tasks = [t for t in tasks if t.dataset.name in dataset]
    if pair:
        canonical = [normalize_task_name(p) for p in pair]  # as `vwbench run` reads a task name
        unknown = [p for p in canonical if p not in {t.name for t in tasks}]
        if unknown:
            raise UserError(f"pair(s) {unknown} are not in suite {suite!r}; pairs are SOURCE->TARGET of sd, owlv2, clip")
        tasks = [t for t in tasks if t.name in canonical]
    if target:
        target = [normalize_task_name(f) for f in target]  # family aliases: detection -> owlv2
        known = {t.target.family for t in tasks}
        unknown = [f for f in target if f not in known]
        if unknown:
            raise UserError(f"target(s) {unknown} are not in suite {suite!r} (its targets: {', '.join(sorted(known))})")
        tasks = [t for t in tasks if t.target.family in target]
    # words are shared per (source, dataset): a local sweep trains each word set once, in the first
    # of its tasks, then evaluates it on the other targets
    return sorted(tasks, key=lambda t: (t.dataset.name, t.source.family, t.target.family))
