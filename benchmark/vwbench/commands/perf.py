"""``vwbench bench``: speed ratios against the straightforward way, peak memory, and the paper projection."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import MAX_THREADS, TasksDir
from vwbench.errors import UserError

FULL_CONCEPTS = 24  # every category of the synthetic world: 24 concepts x 3 trials = 72 words per run


def bench_command(
    out: Annotated[Path, typer.Option("--out", help="The markdown report; its numbers also go to the .json beside it.")] = Path("leaderboards/perf.md"),
    sections: Annotated[Optional[str], typer.Option("--sections", help="Comma-separated: detection, classification, generation, map, suite (default: all; with --tier paper: the three training sections).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Few concepts, steps and images everywhere (a smoke run; the tests use it).")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, max=MAX_THREADS, help="torch CPU threads of every measuring process.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full results as JSON.")] = False,
    suite: Annotated[str, typer.Option("--suite", help="The suite of the cold/warm section.")] = "mini",
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Suite section: only this dataset (repeatable; default: one dataset, the --train-dataset when the suite has it).")] = None,
    suite_run: Annotated[bool, typer.Option("--suite-run", help="Suite section: the whole suite, every dataset (tens of minutes cold on 2 cores).")] = False,
    train_dataset: Annotated[str, typer.Option("--train-dataset", help="Dataset of the training sections (its tier's checkpoints and settings).")] = "synth-imagenet",
    concepts: Annotated[Optional[int], typer.Option("--concepts", min=2, help=f"Training sections: concepts (a synthetic dataset is widened with the world's other categories; default {FULL_CONCEPTS}; --quick and --tier paper: the dataset's own, generation on --tier paper: 2).")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", min=1, help="Training sections: words per concept (default: the task's; --quick and --tier paper: 1).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training sections: steps of vwbench's batched run (default: the task's for detection/classification, 10 for generation; --quick: 3).")] = None,
    naive_words: Annotated[int, typer.Option("--naive-words", min=1, help="Words the reference loops train (spread over all words).")] = 6,
    naive_steps: Annotated[int, typer.Option("--naive-steps", min=1, help="Steps the reference loops take per word (losses compared over these).")] = 3,
    map_images: Annotated[int, typer.Option("--map-images", min=1, help="Images of the mAP section.")] = 1000,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="fp32, or on cuda fp16 or bf16 weights.")] = "fp32",
    compile_steps: Annotated[bool, typer.Option("--compile", help="Training sections: torch.compile the heavy modules of vwbench's training step (the UNet of generation; the reference stays uncompiled). The first steps pay the compilation.")] = False,
    words_per_pass: Annotated[Optional[int], typer.Option("--words-per-pass", min=1, help="Training sections: words per forward/backward of vwbench's run (default: as training chooses: as many as fit on a GPU; on a CPU all of them, SD's a few per pass).")] = None,
    tier: Annotated[Optional[str], typer.Option("--tier", help="'paper': the paper-tier architectures with random weights at paper image sizes (GPU only). Default: the training dataset's own checkpoints (the mini zoo).")] = None,
    project: Annotated[Optional[str], typer.Option("--project", help="'paper': print the paper's study priced at the measured costs (without --sections, from the stored .json or --costs).")] = None,
    costs: Annotated[Optional[Path], typer.Option("--costs", help="With --project: a perf.json to take the costs from (e.g. one measured on a GPU).")] = None,
    tasks_dir: TasksDir = None,
    render: Annotated[bool, typer.Option("--render", help="Measure nothing: write --out again from the .json beside it (its projection and the summary of the <stem>-*.json reports beside it, e.g. perf-gpu.json, recomputed).")] = False,
) -> None:
    """Measure vwbench against the straightforward way, side by side, and write leaderboards/perf.md."""
    from vwbench.perf.sections import TRAINING_SECTIONS, BenchOptions, parse_sections, with_quick_defaults

    if project is not None and project != "paper":
        raise UserError(f"unknown --project {project!r}; the one projection is 'paper'")
    if costs is not None and project is None:
        raise UserError("--costs goes with --project paper")
    if out.suffix != ".md":
        raise UserError(f"--out {out}: give a markdown file name ending in .md (the .json goes beside it)")
    if suite_run and dataset:
        raise UserError("--suite-run sweeps every dataset of the suite; drop --dataset, or drop --suite-run to sweep only those")
    if tier is not None and tier != "paper":
        raise UserError(f"unknown --tier {tier!r}; use 'paper' (random-weight paper-tier models, GPU) or leave it out for the mini zoo")
    if render and project is not None:
        raise UserError("--render rewrites the report from its stored results and --project prints a projection: run them one at a time")
    if render and (as_json or quick):
        raise UserError(f"--render measures nothing and prints the report's path; {'--json' if as_json else '--quick'} applies to a measuring run: drop it")
    if render:
        from vwbench.perf.report import rerender_report

        typer.echo(f"wrote {rerender_report(out)}")
        return
    if project is not None and sections is None:
        if costs is not None and not costs.is_file():
            raise UserError(f"--costs {costs}: no such file (give a perf.json written by `vwbench bench`)")
        _print_projection(costs or out.with_suffix(".json"), as_json)
        return
    if costs is not None:
        raise UserError("--costs prices stored results, and --sections measures anew: drop one of them")
    chosen = parse_sections(sections)
    if tier == "paper":
        if sections is None:
            chosen = tuple(TRAINING_SECTIONS)
        elif "suite" in chosen:
            raise UserError("--tier paper measures training (and map); the suite section runs the mini suite: drop 'suite' from --sections")
    if project is not None and not set(TRAINING_SECTIONS) <= set(chosen):
        raise UserError("--project paper with --sections needs the three training sections (detection, classification, generation)")
    resolved_device = _device(device)
    if tier == "paper" and resolved_device != "cuda":
        raise UserError("--tier paper builds the paper-tier models at paper image sizes (billions of FLOPs per image): it needs --device cuda")
    from vwbench.perf.workload import resolve_dtype

    resolve_dtype(resolved_device, dtype)  # bad --device/--dtype combinations fail here, before any work
    options = BenchOptions(
        sections=chosen, quick=quick, threads=threads, device=resolved_device, dtype=dtype, tier=tier, compile=compile_steps, words_per_pass=words_per_pass,
        tasks_dir=str(tasks_dir) if tasks_dir else None, train_dataset=train_dataset,
        concepts=concepts if concepts is not None else (None if quick or tier == "paper" else FULL_CONCEPTS), trials=trials, steps=steps,
        naive_words=naive_words, naive_steps=naive_steps, map_images=map_images, suite=suite,
        suite_datasets=None if suite_run else (tuple(dataset) if dataset else None),
        log=lambda message: typer.echo(message, err=True),
    )
    options = with_quick_defaults(options)
    if "suite" in chosen and not suite_run and not dataset:
        options = replace(options, suite_datasets=(_reduced_dataset(options),))
    from vwbench.perf.bench import failed_checks, run_bench, summary_lines
    from vwbench.perf.report import write_report
    from vwbench.results.atomic import ensure_output_dir

    _check_datasets(options, chosen)  # before --out is made and before any measuring
    ensure_output_dir(out.parent)  # minutes of measuring must not end in an unwritable --out

    results = run_bench(options, command=shlex.join(["vwbench", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else "vwbench bench")
    markdown, json_path = write_report(results, out)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for line in summary_lines(results):
            typer.echo(line)
        typer.echo(f"wrote {markdown} and {json_path}")
    if project is not None and not as_json:  # with --json the projection is in the printed results
        _print_projection_of(results, as_json)
    failed = failed_checks(results)
    if failed:
        typer.echo(f"error: the two sides of {', '.join(failed)} did not compute the same numbers (see {markdown})", err=True)
        raise typer.Exit(1)


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown --device {name!r}; use auto, cpu or cuda")
    return name


def _check_datasets(options, chosen: tuple[str, ...]) -> None:
    """An unknown --train-dataset (training sections) or --dataset (suite section) is a one-line error."""
    from vwbench.perf.sections import TRAINING_SECTIONS, suite_datasets
    from vwbench.registry import TaskRegistry

    if set(chosen) & set(TRAINING_SECTIONS):
        TaskRegistry.from_dir(Path(options.tasks_dir) if options.tasks_dir else None).dataset(options.train_dataset)
    if "suite" in chosen:
        suite_datasets(options)


def _reduced_dataset(options) -> str:
    """The one dataset of the default (reduced) suite section."""
    from vwbench.perf.sections import suite_datasets

    known = suite_datasets(replace(options, suite_datasets=None))
    return options.train_dataset if options.train_dataset in known else known[0]


def _print_projection(path: Path, as_json: bool) -> None:
    from vwbench.perf.report import read_results

    _print_projection_of(read_results(path), as_json, source=path)


def _print_projection_of(results: dict, as_json: bool, source: Path | None = None) -> None:
    from vwbench.perf.project import project, render_projection
    from vwbench.perf.report import complete_result

    with complete_result(source or "these bench results"):
        projection = project(results)
    if as_json:
        typer.echo(json.dumps(projection, indent=2))
        return
    if source is not None:
        typer.echo(f"costs from {source} (measured {results.get('created')})")
    typer.echo(render_projection(projection))
