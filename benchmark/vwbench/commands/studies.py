"""The study tasks in ``vwbench ls`` and ``vwbench run`` (``--task probe:clip``, ``align:owlv2->clip``,
``sae:clip``); heavy imports stay inside the functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from vwbench.errors import UserError

# Options of `vwbench run` that only word tasks take, with what they do there.
_WORD_ONLY = {"--embeddings": "evaluates submitted words", "--steps": "sets word training steps", "--trials": "sets word trials", "--delta": "constrains word training", "--anchors": "constrains word training",
              "--no-feature-cache": "turns off the word tasks' image-feature cache (studies keep none)"}


def study_rows(tasks_dir: Path | None, tier: str | None = None, dataset: str | None = None) -> list[dict[str, Any]]:
    from vwbench.registry.studies import StudyRegistry, list_studies_table

    rows = list_studies_table(StudyRegistry.from_dir(tasks_dir))
    return [r for r in rows if (tier is None or r["tier"] == tier) and (dataset is None or r["dataset"] == dataset)]


def print_studies(rows: list[dict[str, Any]], as_json: bool) -> None:
    """``vwbench ls --studies``: the study tasks as JSON or a table."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vwbench.progress import print_table

    table = Table(title=f"{len(rows)} study tasks (vwbench run --task FAMILY:ENCODER --dataset D)")
    for column in ("task", "dataset", "tier", "encoders", "version", "pinned"):
        # a narrow terminal squeezes the encoders, never cuts a task or dataset name
        table.add_column(column, no_wrap=column in ("task", "dataset"), overflow="fold")
    for r in rows:
        encoders = ", ".join(f"{name}={ckpt}" for name, ckpt in r["encoders"].items())
        table.add_row(*map(escape, (r["task"], r["dataset"], r["tier"], encoders)), str(r["version"]), "yes" if r["pinned"] else "no")
    print_table(Console(), table)


def run_study_command(task: str, dataset: str, *, tasks_dir: Path | None, word_only: dict[str, Any], **options: Any) -> None:
    """``vwbench run --task FAMILY:...``: run a study task and print its numbers. ``word_only``
    holds the values of the options that apply to word tasks only (each must be unset)."""
    # `is`, not `in`: 0 == False, and `--steps 0` or `--delta 0` are given values
    given = [name for name, value in word_only.items() if not (value is None or value is False or value == [])]
    if given:
        raise UserError(f"{given[0]} {_WORD_ONLY.get(given[0], 'applies to word tasks')}; it does not apply to the study task {task}")
    from vwbench.progress import RichReporter
    from vwbench.registry.studies import StudyRegistry
    from vwbench.results.atomic import output_dir
    from vwbench.runner import resolve_device
    from vwbench.studies.runner import StudyOptions, check_study_transfer, run_study, study_settings

    spec = StudyRegistry.from_dir(tasks_dir).get(task, dataset)
    # a bad --seed, device or transfer leaves no --out folder behind
    study_settings(spec, options.get("seed"))
    resolve_device(options["device"])
    check_study_transfer(spec, options.get("transfer"))

    reporter = RichReporter()
    with output_dir(options["out_dir"], probe=False):  # a bad dataset or checkpoint leaves no empty --out
        run = run_study(spec, StudyOptions(**options), reporter)
    print_study_summary(reporter.console, run.result, run.path, reused=run.reused)
    typer.echo(str(run.path))  # stdout's only line, as for word tasks


def print_study_summary(console, result, path: Path, *, reused: bool = False) -> None:
    """The study's numbers and timings on stderr; ``reused``: ``result`` is a stored run's."""
    from rich.markup import escape
    from rich.table import Table

    from vwbench.commands import print_stored_run_footer
    from vwbench.progress import print_table

    table = Table(title=escape(f"{result.task} on {result.dataset}  ({result.transfer}, seed {result.seed})"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    low, high = result.ci95
    table.add_row(f"[bold]{escape(result.metric)}", f"[bold]{result.value:.3f}  [{low:.3f}, {high:.3f}]")
    for name, value in result.metrics.items():
        if name != result.metric:
            table.add_row(escape(name), f"{value:.4g}")
    print_table(console, table)
    print_stored_run_footer(console, result, path, reused=reused)
