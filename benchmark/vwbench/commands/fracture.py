"""``vwbench delta-sweep``: the fracturing experiment over delta for one or more tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from vwbench.commands import TasksDir, Threads
from vwbench.errors import UserError
from vwbench.jsonio import read_json

if TYPE_CHECKING:
    from vwbench.analysis.sweep import SweepRow
    from vwbench.results.schema import RunResult


def _deltas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--deltas {text!r}: expected comma-separated numbers like 0.1,0.2,0.5,1.0") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise UserError(f"--deltas {text!r}: expected one or more finite numbers >= 0")
    return values


def _plot_png(rows, title: str) -> bytes:
    """The sweep's plot as PNG bytes, drawn in memory (nothing is written until the whole set is)."""
    from vwbench.analysis.plotting import png_bytes
    from vwbench.analysis.sweep import sweep_figure

    return png_bytes(sweep_figure(rows, title))


def table_stem(out: Path, dataset: str, tasks: list[str]) -> Path:
    """Where a delta sweep of ``tasks`` on ``dataset`` writes its table and plot (``.json``, ``.md``,
    ``.png``): named by the tasks only, since the table gathers every stored delta of them."""
    return Path(out) / "sweeps" / dataset / ("delta-" + "_".join(t.replace("->", "-to-") for t in tasks))


def _setting(result: RunResult) -> str:
    """What a fracturing result was run with, its delta aside: results that agree on it form one
    table (models, data, anchors, training and evaluation settings, transfer, vwbench's version:
    its trainer may have changed between versions)."""
    provenance = result.provenance
    return json.dumps({
        "task": result.task, "dataset": result.dataset, "transfer": result.transfer, "steps": result.steps,
        "seed": result.seed, "trials": result.n_trials, "anchors": (result.fracture or {}).get("anchors"),
        "settings": provenance.settings, "data": provenance.dataset_manifest_hash, "dtype": provenance.dtype,
        "task_version": provenance.task_version, "version": provenance.vwbench_version,
        "checkpoints": sorted(json.dumps(c.model_dump(mode="json"), sort_keys=True) for c in provenance.checkpoints),
    }, sort_keys=True)


def _row(result: RunResult, path: Path) -> SweepRow:
    from vwbench.analysis.sweep import SweepRow

    delta = float((result.fracture or {})["delta"])
    return SweepRow(result.task, result.dataset, delta, result.metric, result.value, result.ci95[0], result.ci95[1], str(path))


def _stored_rows(folder: Path, like: RunResult, skip: set[float]) -> list[SweepRow]:
    """The rows of the fracturing results in ``folder`` run like ``like`` (see :func:`_setting`)
    at a delta not in ``skip``: one per delta, the newest where several are stored."""
    from vwbench.results.schema import read_result

    wanted, newest = _setting(like), {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            result = read_result(path)
        except UserError:
            continue  # a torn or foreign file: not part of any table
        if result.fracture is None or _setting(result) != wanted or float(result.fracture["delta"]) in skip:
            continue
        delta = float(result.fracture["delta"])
        if delta not in newest or result.provenance.created > newest[delta][0].provenance.created:
            newest[delta] = (result, path)
    return [_row(result, path) for result, path in newest.values()]


def table_rows(runs: list[list[tuple[RunResult, Path]]]) -> list[SweepRow]:
    """The table of a delta sweep: per task (``runs``: each task's results of this run and their
    files), its deltas of this run and every other delta stored beside them with the same
    settings, so runs of one set of tasks with other deltas add to one table instead of replacing it."""
    rows: list[SweepRow] = []
    for results in runs:
        (first, first_path), own = results[0], [_row(result, path) for result, path in results]
        rows += sorted(own + _stored_rows(first_path.parent, first, {r.delta for r in own}), key=lambda r: r.delta)
    return rows


def _left_out(previous: Path, rows: list[SweepRow]) -> int:
    """How many rows of the table at ``previous`` (JSON) the new ``rows`` leave out (results of
    other settings: the table's name holds only the tasks)."""
    try:
        old: Any = read_json(previous)
        # by file name (a result's name holds its key): the old table's paths are relative to
        # wherever that run was started, and --out may be spelled otherwise than last time
        kept = {Path(r.result).name for r in rows}
        return sum(1 for r in old["rows"] if Path(r["result"]).name not in kept)
    except (OSError, ValueError, TypeError, KeyError):
        return 0  # no table yet, or not one this command wrote


def delta_sweep_command(
    task: Annotated[list[str], typer.Option("--task", "-t", help="SOURCE->TARGET (repeatable: in-domain and transfer tasks share the trained words).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")],
    deltas: Annotated[str, typer.Option("--deltas", help="Comma-separated deltas (the paper's: 0.1,0.2,0.5,1.0).")] = "0.1,0.2,0.5,1.0",
    anchors: Annotated[Optional[list[str]], typer.Option("--anchors", help="concept=word pairs or one word for all (default: the dataset's anchor words).")] = None,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Training steps per word.")] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per concept.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Output folder (results, words, and the table and plot in sweeps/DATASET/delta-TASKS.*).")] = Path("runs"),
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    threads: Threads = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Run each task at every delta (Figure 6) and write the table (JSON, Markdown) and plot (PNG).

    They go to OUT/sweeps/DATASET/delta-TASKS.{json,md,png}. The table also lists every other delta stored in OUT for these tasks with the same settings, so runs with other deltas add to it."""
    from vwbench.analysis.sweep import markdown_table, rows_to_json
    from vwbench.progress import RichReporter
    from vwbench.registry import TaskRegistry
    from vwbench.results.atomic import check_targets, output_dir, write_file_set
    from vwbench.runner import RunOptions, check_run_options, check_task_fits, run_task, train_delta_words

    registry = TaskRegistry.from_dir(tasks_dir)
    specs = [registry.get(t, dataset) for t in task]  # every name checked before anything runs
    repeated = sorted({s.name for s in specs if sum(o.name == s.name for o in specs) > 1})
    if repeated:
        raise UserError(f"--task {repeated[0]} is given more than once (aliases included); give each task once")
    values = _deltas(deltas)
    # words of one source serve several targets: check them all before training; check_task_fits
    # resolves the --steps/--trials/--seed overrides first, so a bad one leaves no --out folder
    for spec in specs:
        options = RunOptions(steps=steps, trials=trials, seed=seed, device=device, out_dir=out, weights_dir=weights, threads=threads, feature_cache=False,
                             delta=values[0], anchors=anchors)
        check_run_options(spec, options)  # --anchors the dataset cannot take, before any model loads
        check_task_fits(spec, options)
    with output_dir(out, probe=False):  # a bad dataset found later leaves no empty --out either
        stem = table_stem(out, specs[0].dataset.name, [s.name for s in specs])
        targets = [stem.with_suffix(suffix) for suffix in (".json", ".md", ".png")]
        check_targets(targets)  # a folder where the table or plot goes: refused before the runs, not after
        reporter = RichReporter()
        runs = [
            RunOptions(
                steps=steps, trials=trials, seed=seed, device=device, out_dir=out, weights_dir=weights,
                data_root=data_root, threads=threads, delta=delta, anchors=anchors,
            )
            for delta in values
        ]
        trained_sources: set[str] = set()
        results: list[list[tuple[RunResult, Path]]] = []
        for spec in specs:
            if spec.source.model_dump_json() not in trained_sources:  # tasks of one source share its words
                train_delta_words(spec, runs, reporter)  # every delta's words in one batch
                trained_sources.add(spec.source.model_dump_json())
            results.append([])
            for delta, options in zip(values, runs):
                result, path, _ = run_task(spec, options, reporter)
                results[-1].append((result, path))
                reporter.log(f"{spec.name} delta {delta:g}: {result.metric} {result.value:.3f}")
    rows = table_rows(results)
    earlier = len(rows) - sum(len(r) for r in results)
    if earlier:
        reporter.log(f"the table adds {earlier} stored result(s) of other deltas with the same settings from {Path(out) / 'results'}")
    left_out = _left_out(targets[0], rows)
    if left_out:
        reporter.log(f"note: {targets[0]} listed {left_out} result(s) that the new table leaves out (run with other settings: "
                               "anchors, steps, trials, seed, models, ...); their results are kept: a delta-sweep with those settings tables them again without training")
    table = markdown_table(rows)
    payload = {"dataset": specs[0].dataset.name, "anchors": anchors, "rows": rows_to_json(rows)}
    # the table (JSON, Markdown) and the plot are rendered in memory, then written all or nothing
    files = dict(zip(targets, (
        (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), table.encode(), _plot_png(rows, f"fracturing on {specs[0].dataset.name}"),
    )))
    write_file_set(files)
    typer.echo(table)
    typer.echo(json.dumps({"table": str(stem.with_suffix(".md")), "json": str(stem.with_suffix(".json")), "plot": str(stem.with_suffix(".png"))}))
