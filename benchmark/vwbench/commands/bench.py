"""``vwbench validate``, ``vwbench leaderboard`` and ``vwbench check`` (heavy imports stay inside)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import TasksDir
from vwbench.errors import UserError

DEFAULT_TOLERANCE = 0.02  # `vwbench leaderboard --check`'s accepted change when --tolerance is not given


def validate_command(
    path: Annotated[Path, typer.Argument(help="A submission: a transfer-method folder (or its submission.yaml), a linear-map or an embeddings safetensors file.")],
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not run a transfer method's code (by default it is run once, sandboxed, on a planted problem).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    tier: Annotated[Optional[str], typer.Option("--tier", help="Also check a linear map or embeddings file against this tier's checkpoints (e.g. mini): widths, vocabulary hashes, and the embeddings' dataset, concepts, length and norms. Loads the models it names.")] = None,
    tasks_dir: Annotated[Optional[Path], typer.Option("--tasks-dir", help="Folder of task YAML files: the datasets an embeddings file may name, and --tier's models.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS; for --tier).")] = None,
) -> None:
    """Check a submission and explain every problem found (exit 1 when there are problems)."""
    from vwbench.submissions import validate

    compare = _tier_comparison(tier, tasks_dir, weights) if tier is not None else None  # a bad --tier: before the dry run
    report = validate(path, run_code=not no_run)
    if compare is not None:
        compare(report)
    elif report.ok and report.kind == "embeddings":  # dataset and concept names need no checkpoint: any tier's dataset
        from vwbench.registry import TaskRegistry
        from vwbench.submissions.validate import check_dataset_names, dataset_concepts

        check_dataset_names(report, dataset_concepts(TaskRegistry.from_dir(tasks_dir)))
    facts = {k: v for k, v in report.info.items() if k in ("dry_run", "describe", "d_source", "d_target", "tier")}
    meta = report.info.get("meta") or report.info.get("manifest")
    if meta is not None:
        facts["about"] = meta.model_dump(mode="json", by_alias=True, exclude_none=True)
    if "words" in report.info:
        facts["concepts"] = {k: list(v.shape) for k, v in report.info["words"].items()}
    if as_json:
        typer.echo(json.dumps({"path": str(path), "kind": report.kind, "ok": report.ok, "problems": report.problems, **facts}, indent=2, default=str))
    elif report.ok:
        from vwbench.submissions.sandbox import one_line

        typer.echo(f"{one_line(str(path), 1000)}: valid {report.kind} submission")  # a newline in a folder name would start a line of its own
        for key, value in facts.items():
            typer.echo(f"  {key}: {json.dumps(value, default=str)}")
    else:
        from vwbench.submissions.sandbox import one_line

        typer.echo(f"{one_line(str(path), 1000)}: {len(report.problems)} problem(s) in this {report.kind} submission:", err=True)
        for problem in report.problems:
            typer.echo(f"  - {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


def _tier_comparison(tier: str, tasks_dir: Path | None, weights: Path | None):
    """``validate --tier``: the tier's models are looked up now (an unknown tier is a one-line error
    before anything runs); the returned function compares a report with them, loading on the CPU
    only the models the file names."""
    import torch

    from vwbench.analysis.context import Models
    from vwbench.registry import TaskRegistry
    from vwbench.submissions.validate import check_against_models, dataset_concepts

    registry = TaskRegistry.from_dir(tasks_dir)
    specs = registry.models(tier)
    models = Models(torch.device("cpu"), weights)

    def compare(report) -> None:
        if report.kind == "transfer-method":
            report.info["tier"] = f"{tier}: a transfer method is fitted on whichever models a run pairs, so there is nothing to compare"
            return
        check_against_models(report, lambda family: models.get(specs[family]), dataset_concepts(registry, tier))
        if report.ok:
            report.info["tier"] = f"{tier}: fits its checkpoints"

    return compare


def leaderboard_command(
    results: Annotated[Path, typer.Option("--results", help="Folder of result JSON files (what `vwbench run` wrote under OUT/results).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write README.md, leaderboard.json and index.html into.")],
    name: Annotated[Optional[str], typer.Option(help="Leaderboard name (default: the --out folder's name).")] = None,
    check: Annotated[Optional[list[str]], typer.Option("--check", help="Store these runs for `vwbench check`: DATASET:TASK:TRANSFER (globs; the dataset and task as `vwbench run` takes them) or 'all'; TRANSFER is a result's method name (a submission's `name:` in submission.yaml, not its path). Repeatable.")] = None,
    tolerance: Annotated[Optional[float], typer.Option(help="With --check: the largest change, up or down, `vwbench check` accepts for the stored runs (absolute, in metric units; default 0.02).")] = None,
) -> None:
    """Build a leaderboard (markdown, JSON and a self-contained HTML page) from result files.

    One result is shown per dataset, task and method (a result's `transfer` name): the run with
    the most steps, then the most trials, then the newest. The others are listed, with why, under
    'Superseded results'; a warning is printed where they differ in seed, settings or submitted file."""
    from vwbench.leaderboard import board_name, build, check_leaderboard_out, collect, write_leaderboard
    from vwbench.leaderboard.check import check_section, dropped_check_warning
    from vwbench.leaderboard.collect import mixed_run_warnings, supersede_warnings
    from vwbench.results.schema import printable

    label = board_name(out, name)  # a name UTF-8 cannot encode is refused before any work
    check_leaderboard_out(out)  # and an --out holding another README.md or index.html
    if tolerance is not None and not check:
        raise UserError("--tolerance goes with --check (it is the change `vwbench check` accepts for the runs --check stores)")
    dropped = None if check else dropped_check_warning(out)  # read before the board there is replaced
    section = None
    if check:
        preview = build(collect(results), label)
        section = check_section(preview["results"], check, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    board = write_leaderboard(results, out, label, section)
    for line in [*supersede_warnings(board["superseded_by"]), *mixed_run_warnings(board), *([dropped] if dropped else [])]:
        typer.echo(line, err=True)
    first = board["skipped"][0] if board["skipped"] else None
    skipped = f", {len(board['skipped'])} file(s) skipped (e.g. {first['file']}: {first['reason']}; all in README.md)" if first else ""
    superseded = f", {len(board['superseded_by'])} superseded by another run of their method (listed in the board)" if board["superseded_by"] else ""
    checks = f", {len(section['entries'])} run(s) stored for `vwbench check`" if section else ""
    datasets = {r["dataset"] for r in board["results"].values()}  # study results too (the board's datasets are the word tasks')
    typer.echo(f"{printable(str(out))}: leaderboard of {len(board['results'])} results over {len(datasets)} dataset(s){skipped}{superseded}{checks}")


def check_command(
    baseline: Annotated[Path, typer.Option("--baseline", help="A leaderboard.json written with --check.")],
    tasks_dir: TasksDir = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Keep the re-run's words and results here: a new or empty folder, or an interrupted check's own, which it resumes (default: a temporary folder, deleted after).")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    root: Annotated[Optional[Path], typer.Option("--root", help="Folder the baseline's stored submission paths are relative to: where its runs were made (default: the current folder).")] = None,
) -> None:
    """Re-run a baseline's check subset; exit 1 with a table of values that moved (up or down) beyond its tolerance.

    Each run repeats with the CPU threads its baseline run recorded.

    A line on stderr says which run starts, and each of its stages.

    A run that cannot be made exits 2, and the rest are not run."""
    from vwbench.leaderboard.check import format_drops, run_check  # run_check reads the baseline before anything else
    from vwbench.results.schema import printable

    if baseline.is_dir():
        inside = baseline / "leaderboard.json"
        hint = f"; did you mean {printable(str(inside))}?" if inside.is_file() else ""
        raise UserError(f"--baseline {printable(str(baseline))}: a folder, not a leaderboard.json{hint}")
    if not baseline.is_file():
        raise UserError(f"--baseline {printable(str(baseline))}: no such file (a leaderboard.json written with `vwbench leaderboard --check ...`)")
    if root is not None and not root.is_dir():
        raise UserError(f"--root {printable(str(root))}: not a folder (give the folder the baseline's runs were made in)")
    rows = run_check(baseline, tasks_dir, out, weights, data_root, log=lambda m: typer.echo(m, err=True), root=root)
    if any(r.failed for r in rows):
        typer.echo(format_drops(rows))
        raise typer.Exit(1)
    typer.echo(f"ok: {len(rows)} value(s) within tolerance of {printable(str(baseline))}")


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``leaderboard`` and ``check`` to ``app``."""
    app.command("validate")(validate_command)
    app.command("leaderboard")(leaderboard_command)
    app.command("check")(check_command)
