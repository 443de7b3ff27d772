"""A suite sweep as two phases of picklable jobs, for any executor.

1. **Word jobs**: the words the suite needs (:func:`vwbench.units.plan_word_units`), less those
   stored, grouped by (dataset, source model, settings) since every target of one source shares
   them, each group cut into chunks trained together in one batch (:func:`train_word_chunk`).
2. **Result jobs**: one per (task, transfer) (:func:`run_result_unit`): ``run_task`` assembles the
   task's words from the stored units and evaluates them (a stored result is reused).

Every job skips what is stored and writes atomically, so a stopped sweep resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vwbench.executors.base import Job
from vwbench.progress import Reporter


@dataclass
class SweepPlan:
    """The jobs of both phases and what the plan found stored."""

    word_jobs: list[Job] = field(default_factory=list)
    result_jobs: list[Job] = field(default_factory=list)
    word_units: int = 0  # distinct words the selected tasks need
    stored_units: int = 0  # of them, already stored (skipped)

    @property
    def units_to_train(self) -> int:
        return self.word_units - self.stored_units


def train_word_chunk(task: Any, units: tuple, options: Any, reporter: Reporter | None = None) -> list[Path]:
    """Word job: train ``units`` (all of ``task``) in one batch, one stored file each; returns
    the units' files."""
    from vwbench.units import run_word_units

    return run_word_units(task, list(units), options, reporter)


def journal_outcome(job: Job, outcome: Any) -> None:
    """Note on the driver what a remote job stored, for the line Ctrl-C prints."""
    from vwbench.results import journal

    if job.fn is train_word_chunk:
        for path in outcome.value:
            journal.record(path.parent, "trained words (sweep units)")
    elif job.fn is run_result_unit:
        journal.record(outcome.value.path, "result", reused=outcome.value.reused)


@dataclass(frozen=True)
class ResultOutcome:
    """What a result job sends back to the driver's summary."""

    result: Any  # vwbench.results.schema.RunResult
    path: Path
    reused: bool


def run_result_unit(task: Any, options: Any, reporter: Reporter | None = None) -> ResultOutcome:
    """Result job: ``run_task`` for one (task, transfer), then the chunk checkpoints its word set
    no longer needs are deleted."""
    from vwbench.runner import run_task

    run = run_task(task, options, reporter)
    _drop_chunk_states(run.result, options)
    return ResultOutcome(run.result, run.path, run.reused)


def _drop_chunk_states(result: Any, options: Any) -> None:
    """Delete the chunk checkpoints of the result's word set once the whole set is stored (a
    sweep cut into other chunks, or one whose words then trained in a local run, leaves them)."""
    from vwbench.units import remove_finished_chunk_states, set_stored

    words = result.provenance.words_file
    out_dir = Path(options.out_dir).resolve()
    if options.embeddings is not None or not words or not Path(words).resolve().is_relative_to(out_dir / "words"):
        return  # submitted words, or words outside this sweep's folder (its locks are elsewhere)
    remove_finished_chunk_states(options.out_dir, Path(words), lambda: set_stored(Path(words)))


def _share_key(task: Any, options: Any) -> str:
    """Tasks with equal keys train the same words (same dataset, source checkpoint, settings)."""
    from vwbench.runner import resolve_hyperparameters

    return "|".join([task.dataset.model_dump_json(), task.source.model_dump_json(), resolve_hyperparameters(task, options).model_dump_json()])


def chunk_size(group_size: int, *, slots: int, words_per_job: int | None, split_groups: bool) -> int:
    """How many words one job trains: ``words_per_job`` if given; else the whole group, or (on a
    parallel executor) a ``slots``-th of it, so that even one group keeps every worker busy
    (groups differ a lot in cost: a source's words can take far longer than another's)."""
    if words_per_job:
        return words_per_job
    if not split_groups:
        return max(1, group_size)
    return max(1, math.ceil(group_size / max(1, slots)))


def plan_sweep(
    tasks: list[Any], transfers: list[str] | None, options: Any, *, slots: int = 1, words_per_job: int | None = None,
    split_groups: bool = True, word_phase: bool = True,
) -> SweepPlan:
    """Both phases' jobs for ``tasks`` (each cross-model task once per transfer in ``transfers``,
    or with its own transfer). Loads each source model once on this process, to find the stored
    words. Without ``word_phase`` the words train inside the result jobs (the whole group in one
    batch, by the first task that needs them)."""
    from vwbench.runner import check_task_fits, preflight_submitted_transfer
    from vwbench.units import plan_word_units, release_contexts, unit_done

    plan = SweepPlan()
    groups: dict[str, tuple[Any, list]] = {}
    for task in tasks:
        share = _share_key(task, options)
        if share in groups:
            check_task_fits(task, options)  # its words train in an earlier task's jobs: check its target now
            continue  # the same words as an earlier task's
        groups[share] = (task, [])
        for unit in plan_word_units(task, options):
            plan.word_units += 1
            if unit_done(task, options, unit):
                plan.stored_units += 1
            else:
                groups[share][1].append(unit)
    release_contexts()  # the driver only needed the models to find the stored words
    todo = [(task, units) for task, units in groups.values() if units]
    if word_phase:
        for task, units in todo:
            size = chunk_size(len(units), slots=slots, words_per_job=words_per_job, split_groups=split_groups)
            chunks = [units[i : i + size] for i in range(0, len(units), size)]
            for n, chunk in enumerate(chunks, 1):
                part = f", part {n}/{len(chunks)}" if len(chunks) > 1 else ""
                label = f"train {len(chunk)} word(s) of {task.source.family} on {task.dataset.name}{part}"
                plan.word_jobs.append(Job(label, train_word_chunk, (task, tuple(chunk), options)))
    for task in tasks:
        for method in [None] if task.in_domain or not transfers else transfers:
            label = f"{task.name} on {task.dataset.name}" + (f" ({method})" if method else "")
            plan.result_jobs.append(Job(label, run_result_unit, (task, replace(options, transfer=method))))
    if todo and word_phase:  # a submitted transfer that cannot work fails now, before the word jobs are sent
        tried: set[tuple] = set()
        for job in plan.result_jobs:
            task, job_options = job.args
            mark = (task.source.model_dump_json(), task.target.model_dump_json(), job_options.transfer or task.default_transfer)
            if mark not in tried:
                tried.add(mark)
                preflight_submitted_transfer(task, job_options)
    return plan
