"""``vwbench delta-sweep``: the fracturing experiment over delta for one or more tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import MAX_THREADS
from vwbench.errors import UserError


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


def delta_sweep_command(
    task: Annotated[list[str], typer.Option("--task", "-t", help="SOURCE->TARGET (repeatable: in-domain and transfer tasks share the trained words).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")],
    deltas: Annotated[str, typer.Option("--deltas", help="Comma-separated deltas (the paper's: 0.1,0.2,0.5,1.0).")] = "0.1,0.2,0.5,1.0",
    anchors: Annotated[Optional[list[str]], typer.Option("--anchors", help="concept=word pairs or one word for all (default: the dataset's anchor words).")] = None,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Training steps per word.")] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per concept.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Output folder (results, words, and sweeps/).")] = Path("runs"),
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, max=MAX_THREADS, help="CPU threads for torch.")] = None,
    tasks_dir: Annotated[Optional[Path], typer.Option("--tasks-dir", help="Folder of task YAML files.")] = None,
) -> None:
    """Run each task at every delta (Figure 6) and write the table (JSON, Markdown) and plot (PNG)."""
    from vwbench.analysis.sweep import SweepRow, markdown_table, rows_to_json
    from vwbench.progress import RichReporter
    from vwbench.registry import TaskRegistry
    from vwbench.results.atomic import check_targets, ensure_output_dir, write_file_set
    from vwbench.runner import RunOptions, check_task_fits, run_task, train_delta_words

    registry = TaskRegistry.from_dir(tasks_dir)
    specs = [registry.get(t, dataset) for t in task]  # every name checked before anything runs
    repeated = sorted({s.name for s in specs if sum(o.name == s.name for o in specs) > 1})
    if repeated:
        raise UserError(f"--task {repeated[0]} is given more than once (aliases included); give each task once")
    values = _deltas(deltas)
    for spec in specs:  # words of one source serve several targets: check them all before training
        check_task_fits(spec, RunOptions(device=device, out_dir=out, weights_dir=weights, threads=threads, feature_cache=False))
    ensure_output_dir(out, probe=False)
    stem = Path(out) / "sweeps" / specs[0].dataset.name / ("delta-" + "_".join(s.name.replace("->", "-to-") for s in specs))
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
    rows: list[SweepRow] = []
    for spec in specs:
        if spec.source.model_dump_json() not in trained_sources:  # tasks of one source share its words
            train_delta_words(spec, runs, reporter)  # every delta's words in one batch
            trained_sources.add(spec.source.model_dump_json())
        for delta, options in zip(values, runs):
            result, path = run_task(spec, options, reporter)
            rows.append(SweepRow(spec.name, spec.dataset.name, delta, result.metric, result.value, result.ci95[0], result.ci95[1], str(path)))
            reporter.console.print(f"{spec.name} delta {delta:g}: {result.metric} {result.value:.3f}")
    table = markdown_table(rows)
    payload = {"dataset": specs[0].dataset.name, "anchors": anchors, "rows": rows_to_json(rows)}
    # the table (JSON, Markdown) and the plot are rendered in memory, then written all or nothing
    files = dict(zip(targets, (
        (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode(), table.encode(), _plot_png(rows, f"fracturing on {specs[0].dataset.name}"),
    )))
    write_file_set(files)
    typer.echo(table)
    typer.echo(json.dumps({"table": str(stem.with_suffix(".md")), "plot": str(stem.with_suffix(".png"))}))
