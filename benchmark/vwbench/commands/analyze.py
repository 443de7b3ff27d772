"""``vwbench analyze neighbors|truncation|tsne``: analyses of stored runs' words."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.analysis import stem_file
from vwbench.commands import TasksDir, Threads

analyze_app = typer.Typer(help="Analyses of trained words (nearest words, text-encoder layers).", no_args_is_help=True)

Results = Annotated[list[Path], typer.Option("--result", "-r", help="A run's result JSON (repeatable: one analysis of several runs).")]
OneResult = Annotated[list[Path], typer.Option("--result", "-r", help="A run's result JSON (one run, with sd as its source or target).")]
Out = Annotated[Optional[str], typer.Option("--out", help="Output file stem, or a folder (an existing one, or a path ending in /) to write the default names into (default: next to the first result, analysis-<name>-<that result's file stem>).")]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Layers = Annotated[Optional[str], typer.Option("--layers", help="Comma-separated 1-based block counts (default: four evenly spaced: 1,8,15,23 on SD 2.1's 23 blocks, 1,2,3 on mini-sd's 3).")]


def _setup(results: list[Path], tasks_dir: Path | None, weights: Path | None, device: str, threads: int | None):
    from vwbench.analysis.context import Models, open_run
    from vwbench.registry import TaskRegistry
    from vwbench.runner import compute_setup

    registry = TaskRegistry.from_dir(tasks_dir)
    models = Models(compute_setup(device, threads)[0], weights)
    runs = [open_run(p, registry, models) for p in results]
    return registry, runs, models


def _check_out(out: str | None) -> None:
    """An --out that names no file (``''``, ``.``, ``..``) is refused before any work; one ending
    in ``/`` names a folder (see :func:`_analysis_out`)."""
    from vwbench.errors import UserError

    if out is not None and not out.endswith(("/", os.sep)) and Path(out).name in ("", ".", ".."):
        raise UserError(f"--out {out!r} names no file: give a file stem such as analyses/tsne (STEM.json and STEM.png are written), "
                        "a folder ending in / (the default names go inside it), or leave --out out")


def _names_folder(out: str) -> bool:
    """Whether ``--out`` is meant as a folder: it ends in a path separator (``analyses/``) or is
    an existing folder."""
    return bool(out) and (out.endswith(("/", os.sep)) or Path(out).is_dir())


@contextmanager
def _analysis_out(out: str | None, results: list[Path], name: str, suffixes: tuple[str, ...] = (".json", ".png")) -> Iterator[Path]:
    """Where the analysis goes (``STEM`` + each of ``suffixes``), for the work inside the block: the
    files checked writable and their folder made before the work (a folder in the way is a one-line
    error), and that folder removed again if the work fails before anything was written in it.
    A folder ``--out`` (existing, or ending in ``/``, made here) gets the default names inside it."""
    from vwbench.analysis import default_stem
    from vwbench.results.atomic import check_targets, output_dir

    _check_out(out)
    stem = default_stem(name, results[0])
    if out is not None:
        stem = Path(out) / stem.name if _names_folder(out) else Path(out)
    check_targets([stem_file(stem, suffix) for suffix in suffixes])
    with output_dir(stem.parent, "--out"):
        yield stem


def _parse_layers(text: str | None) -> list[int] | None:
    """``--layers`` as block numbers (``None``: the default, four evenly spaced); checked before
    any model is loaded: a list with no number (``''``, ``,``) or a non-number is refused."""
    from vwbench.errors import UserError

    if text is None:
        return None
    try:
        layers = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--layers {text!r}: expected comma-separated block numbers like 1,8,15,23") from None
    if not layers:
        raise UserError(f"--layers {text!r} names no block: give comma-separated block numbers like 1,8,15,23, or leave --layers out for four evenly spaced ones")
    return layers


def _layers(text: str | None, total: int) -> list[int]:
    from vwbench.analysis.layers import check_layers, even_layers

    layers = _parse_layers(text)
    return even_layers(total) if layers is None else check_layers(layers, total)


@analyze_app.command("neighbors")
def neighbors_command(result: Results, k: Annotated[int, typer.Option("--k", min=1, help="Nearest words per vector.")] = 5, out: Out = None, weights: Weights = None, device: Device = "auto", threads: Threads = None, tasks_dir: TasksDir = None) -> None:
    """Nearest vocabulary words of each trained word (source model) and of its transfer (target)."""
    import json

    from vwbench.analysis.neighbors import neighbor_report
    from vwbench.results.atomic import write_file_set

    _check_out(out)
    _, runs, models = _setup(result, tasks_dir, weights, device, threads)
    with _analysis_out(out, result, "neighbors", (".json",)) as stem:
        report = []
        for run in runs:
            source, target = run.source(models), run.target(models)
            words = neighbor_report(run.words, source.vocabulary(), run.words.vectors, target.vocabulary(), run.mapped(models), k)
            report.append({"result": str(run.path), "task": run.task.name, "dataset": run.task.dataset.name, "transfer": run.result.transfer, "words": words})
            for w in words:
                src = " | ".join(" ".join(t for t, _ in vec) for vec in w["source"])
                tgt = " | ".join(" ".join(t for t, _ in vec) for vec in w["target"])
                typer.echo(f"{run.task.name} {w['concept']} trial {w['trial']} (init {w['init_word']}): {run.task.source.family}: {src}  ->  {run.task.target.family}: {tgt}")
        path = stem_file(stem, ".json")
        write_file_set({path: (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()})  # also removes a killed analysis's temp file
        typer.echo(f"written: {path}")


@analyze_app.command("truncation")
def truncation_command(
    result: OneResult,
    layers: Layers = None,
    generations: Annotated[Optional[int], typer.Option(min=1, help="Images per word (default: the task's).")] = None,
    inference_steps: Annotated[Optional[int], typer.Option(min=1, help="Denoising steps (default: the task's).")] = None,
    out: Out = None, weights: Weights = None, device: Device = "auto", threads: Threads = None, tasks_dir: TasksDir = None,
) -> None:
    """Generate with only the first N text-encoder blocks and measure generation accuracy (one result)."""
    from vwbench.analysis.context import sd_words
    from vwbench.analysis.layers import n_blocks, truncation_accuracy, truncation_figure
    from vwbench.analysis.plotting import save_json_and_png
    from vwbench.errors import UserError
    from vwbench.progress import RichReporter

    if len(result) != 1:
        raise UserError("analyze truncation takes one --result")
    _check_out(out)
    _parse_layers(layers)
    registry, (run,), models = _setup(result, tasks_dir, weights, device, threads)
    with _analysis_out(out, result, "truncation") as stem:
        sd, vectors = sd_words(run, models)
        judge = models.get(registry.models(run.task.tier)["judge"])
        total = n_blocks(sd)
        chosen = _layers(layers, total)
        ev = run.task.eval
        rows = truncation_accuracy(
            sd, judge, vectors, run.words.concepts, run.task.dataset.concept_names, chosen,
            generations=generations or ev.generations_per_word, steps=inference_steps or ev.inference_steps,
            guidance=ev.guidance_scale, seed=run.result.seed, reporter=RichReporter(),
        )
        payload = {"result": str(run.path), "task": run.task.name, "blocks": total, "rows": rows}
        figure = truncation_figure(rows, total, f"{run.task.name} on {run.task.dataset.name}: truncated text encoder")
        save_json_and_png(stem, payload, figure)
        for r in rows:
            typer.echo(f"first {r['layers']}/{total} blocks: generation accuracy {r['accuracy']:.3f}")
        typer.echo(f"written: {stem_file(stem, '.json')}, {stem_file(stem, '.png')}")


@analyze_app.command("tsne")
def tsne_command(result: Results, layers: Layers = None, out: Out = None, weights: Weights = None, device: Device = "auto", threads: Threads = None, tasks_dir: TasksDir = None) -> None:
    """t-SNE of the pooled token's activations at evenly spaced text-encoder blocks (results pooled)."""
    import numpy as np

    from vwbench.analysis.context import sd_words
    from vwbench.analysis.layers import n_blocks, pooled_activations, tsne_2d, tsne_figure
    from vwbench.analysis.plotting import save_json_and_png
    from vwbench.errors import UserError

    _check_out(out)
    _parse_layers(layers)
    _, runs, models = _setup(result, tasks_dir, weights, device, threads)
    with _analysis_out(out, result, "tsne") as stem:
        per_layer: dict[int, list] = {}
        concepts: list[str] = []
        anchors: list[str] = []
        total = None
        for run in runs:
            sd, vectors = sd_words(run, models)
            if total is not None and n_blocks(sd) != total:
                raise UserError("analyze tsne: the results use text encoders of different depths; pool runs of one model")
            total = n_blocks(sd)
            chosen = _layers(layers, total)
            for n, acts in pooled_activations(sd, vectors, chosen).items():
                per_layer.setdefault(n, []).append(acts)
            concepts += list(run.words.concepts)
            anchors += run.word_anchors
        embeddings = {n: tsne_2d(np.concatenate(parts)) for n, parts in per_layer.items()}
        payload = {
            "results": [str(p) for p in result], "blocks": total, "concepts": concepts, "anchors": anchors,
            "points": {str(n): e.round(4).tolist() for n, e in embeddings.items()},
        }
        save_json_and_png(stem, payload, tsne_figure(embeddings, concepts, anchors, total, "pooled token activations (t-SNE)"))
        typer.echo(f"{len(concepts)} words, blocks {sorted(embeddings)} of {total}")
        typer.echo(f"written: {stem_file(stem, '.json')}, {stem_file(stem, '.png')}")
