"""The ``vwbench`` command line. Each command parses, calls one function, and prints.

Errors the user can fix (:class:`vwbench.errors.UserError`) print one line and exit with code 2;
Ctrl-C exits with 130. Heavy imports (torch and the model libraries) happen inside the commands
that need them, so ``vwbench ls`` stays fast.
"""

from __future__ import annotations

import difflib

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vwbench.commands import TasksDir, Threads, print_stored_run_footer
from vwbench.errors import UserError

app = typer.Typer(
    help="vwbench: train visual words on one model, transfer them to another, and measure them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _registry(tasks_dir: Path | None):
    from vwbench.registry import TaskRegistry

    return TaskRegistry.from_dir(tasks_dir)


@app.command("ls")
def ls_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the task list as JSON.")] = False,
    tier: Annotated[Optional[str], typer.Option(help="Only tasks of this tier: paper or mini.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Only tasks on this dataset.")] = None,
    studies: Annotated[bool, typer.Option("--studies", help="List the study tasks (probe, align, sae) instead.")] = False,
    tasks_dir: TasksDir = None,
) -> None:
    """List every task (SOURCE->TARGET x dataset) and, in the table view, the study tasks."""
    from vwbench.commands.studies import print_studies, study_rows
    from vwbench.registry import list_tasks_table

    registry = _registry(tasks_dir)
    if dataset:
        dataset = registry.dataset(dataset).name  # aliases and spelling as `vwbench run` reads them
    if studies:
        print_studies(_only(study_rows(tasks_dir), tier, dataset, "study task"), as_json)
        return
    rows = _only(list_tasks_table(registry), tier, dataset, "task")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    # read before printing anything: a study file that does not load must not follow a printed table
    study_table = [r for r in study_rows(tasks_dir, tier) if dataset is None or r["dataset"] == dataset]
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vwbench.progress import print_table

    table = Table(title=f"{len(rows)} tasks")
    for column in ("task", "dataset", "tier", "metric", "version", "pinned"):
        table.add_column(column, no_wrap=column in ("task", "dataset"), overflow="fold")
    for r in rows:
        table.add_row(*map(escape, (r["task"], r["dataset"], r["tier"], r["metric"])), str(r["version"]), "yes" if r["pinned"] else "no")
    print_table(Console(), table)
    print_studies(study_table, as_json=False)


def _only(rows: list[dict], tier: str | None, dataset: str | None, what: str) -> list[dict]:
    """The rows of ``--tier`` and ``--dataset`` (a value no row has is an error, not an empty list)."""
    for name, value, column in (("--tier", tier, "tier"), ("--dataset", dataset, "dataset")):
        if value is None:
            continue
        known = sorted({r[column] for r in rows})
        if value not in known:
            scope = f" of tier {tier}" if column == "dataset" and tier is not None else ""
            # a dataset reaches here only once the registry knows it: then no suite lists it (or not this tier's)
            why = "; a dataset has tasks once a suite file (suites/NAME.yaml in the tasks folder) lists it" if column == "dataset" and what == "task" and tier is None else ""
            raise UserError(f"{name} {value!r}: no {what}{scope} has it{why} (datasets with {what}s: {', '.join(known)})" if column == "dataset"
                            else f"{name} {value!r}: no {what}{scope} has it (known: {', '.join(known)})")
        rows = [r for r in rows if r[column] == value]
    return rows


@app.command("run")
def run_command(
    task: Annotated[str, typer.Option("--task", "-t", help="SOURCE->TARGET, each of sd, owlv2, clip (quote it in the shell); or a study task FAMILY:ENCODER (probe:clip, align:owlv2->clip, sae:clip; see `vwbench ls --studies`).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name, e.g. synth-coco or coco.")],
    transfer: Annotated[Optional[str], typer.Option(help="Transfer method: a built-in name (lstsq, ridge, procrustes, knn, anchor, random, identity) or a submission's path (default: identity for x->x, lstsq otherwise).")] = None,
    embeddings: Annotated[Optional[Path], typer.Option("--embeddings", help="An embeddings submission (safetensors): evaluate its words instead of training.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=0, help="Training steps per word (default: the task's setting: tasks/defaults.yaml, then the settings of its tier, dataset and suite files; `vwbench ls --json` does not show it, a result's provenance does).")] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per concept, each from another init word.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (fp16 weights on cuda).")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Output folder for trained words and results.")] = Path("runs"),
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Folder of real checkpoints (or $VWBENCH_WEIGHTS).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of real datasets (or $VWBENCH_DATA).")] = None,
    threads: Threads = None,
    feature_cache: Annotated[bool, typer.Option("--feature-cache/--no-feature-cache", help="Keep frozen image-side features under OUT/features and reuse them.")] = True,
    delta: Annotated[Optional[float], typer.Option("--delta", min=0.0, help="Fracturing: keep each word within delta x its anchor's distance to the nearest other word (Eq. 4).")] = None,
    anchors: Annotated[Optional[list[str]], typer.Option("--anchors", help="Fracturing anchors: concept=word pairs (comma-separated or repeated) or one word for all (default: the dataset's anchor words).")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Train concept words on SOURCE, transfer them to TARGET, evaluate, and store the result.

    A study task (probe:clip, align:owlv2->clip, sae:clip) runs its study instead."""
    from vwbench.results.atomic import output_dir

    if ":" in task:
        from vwbench.commands.studies import run_study_command

        word_only = {"--embeddings": embeddings, "--steps": steps, "--trials": trials, "--delta": delta, "--anchors": anchors,
                     "--no-feature-cache": not feature_cache}
        return run_study_command(task, dataset, tasks_dir=tasks_dir, word_only=word_only, transfer=transfer, seed=seed, device=device, out_dir=out, weights_dir=weights, data_root=data_root, threads=threads)
    spec = _registry(tasks_dir).get(task, dataset)
    from vwbench.progress import RichReporter
    from vwbench.runner import RunOptions, check_run_options, run_task

    options = RunOptions(transfer=transfer, steps=steps, trials=trials, seed=seed, device=device, out_dir=out, weights_dir=weights, data_root=data_root, threads=threads, embeddings=embeddings, delta=delta, anchors=anchors, feature_cache=feature_cache)
    check_run_options(spec, options)  # a bad option leaves no --out folder behind
    reporter = RichReporter()
    with output_dir(out, probe=False):  # a bad dataset or checkpoint found later leaves no empty --out either
        run = run_task(spec, options, reporter)
    _print_summary(reporter.console, run.result, run.path, reused=run.reused)
    typer.echo(str(run.path))  # stdout's only line, for `path=$(vwbench run ...)`; the rest is on stderr


zoo_app = typer.Typer(help="The mini zoo: small trained models shipped with vwbench.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
from vwbench.commands.data import data_app  # noqa: E402
from vwbench.commands.fracture import delta_sweep_command  # noqa: E402
from vwbench.commands.analyze import analyze_app  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(analyze_app, name="analyze")
app.command("delta-sweep")(delta_sweep_command)
from vwbench.commands.sweep import sweep_command  # noqa: E402

app.command("sweep")(sweep_command)
from vwbench.commands.perf import bench_command  # noqa: E402

app.command("bench")(bench_command)
ZooOnly = Annotated[Optional[list[str]], typer.Option("--only", help="Only this model (repeatable): mini-clip, mini-judge, mini-sd-text, mini-owlv2, mini-sd.")]
ZooRoot = Annotated[Optional[Path], typer.Option("--root", help="Zoo folder (default: the package's own).")]


@zoo_app.command("train")
def zoo_train_command(
    only: ZooOnly = None,
    root: ZooRoot = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Models trained side by side, each in its own process on an equal share of the CPU threads (a model waits for the checkpoints it is built on).")] = 2,
) -> None:
    """Rebuild the mini checkpoints from their seeds on a CPU (see leaderboards/mini/zoo.md for each one's time)."""
    from vwbench.zoo.build import ZOO_DIR, train_zoo

    train_zoo(root or ZOO_DIR, only, log=lambda m: typer.echo(m, err=True), jobs=jobs)


@zoo_app.command("check")
def zoo_check_command(
    only: ZooOnly = None,
    root: ZooRoot = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the quality numbers as JSON.")] = False,
    hashes_only: Annotated[bool, typer.Option("--hashes-only", help="Only verify the manifests' sha256.")] = False,
) -> None:
    """Verify the mini checkpoints' hashes and measure their quality numbers."""
    from vwbench.zoo.build import ZOO_DIR, check_zoo, require_built, verify_zoo, zoo_problems_error

    if root is not None:
        require_built(root)  # a folder with no checkpoint at all: the --root is wrong, not one model
    if hashes_only:  # every model is checked and reported, then the bad ones fail the command
        problems: dict[str, str] = {}
        verified = verify_zoo(root or ZOO_DIR, only, problems)
        if as_json:
            report = {name: {"hashes": "ok", "folder": str(folder)} for name, folder in verified.items()}
            report.update({name: {"hashes": "failed", "error": message} for name, message in problems.items()})
            typer.echo(json.dumps(dict(sorted(report.items())), indent=2))
        else:
            for name, folder in verified.items():
                typer.echo(f"{name}: ok ({folder})")
            for name in problems:
                typer.echo(f"{name}: FAILED")
        if problems:
            raise zoo_problems_error(problems)
        return
    report = check_zoo(root or ZOO_DIR, only)
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else _format_quality(report))


@zoo_app.command("report")
def zoo_report_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for zoo.md and its images.")] = Path("leaderboards/mini"),
    root: ZooRoot = None,
    measure: Annotated[bool, typer.Option("--measure", help="Measure the quality numbers now on the current datasets (as vwbench zoo check) instead of reading them from the training logs.")] = False,
    board: Annotated[Optional[Path], typer.Option("--board", help="Leaderboard whose in-domain words the card sets against the targets (default: OUT/leaderboard.json where it exists).")] = None,
) -> None:
    """Write the zoo card (zoo.md: sizes, training times, curves, samples, quality numbers)."""
    from vwbench.results.atomic import ensure_output_dir
    from vwbench.zoo.build import ZOO_DIR, check_zoo, require_built
    from vwbench.zoo.report import write_zoo_report

    if board is not None and not board.is_file():
        raise UserError(f"no leaderboard at {board}: write one with `vwbench leaderboard --out DIR` or leave --board out")
    if board is not None:  # read once up front: a board that does not read leaves no --out folder
        from vwbench.leaderboard.build import read_leaderboard

        read_leaderboard(board, str(board))
    if root is not None:
        require_built(root)  # before --out is made: a wrong --root leaves nothing
    ensure_output_dir(out)
    measured = check_zoo(root or ZOO_DIR) if measure else None
    typer.echo(f"wrote {write_zoo_report(out, root or ZOO_DIR, measured=measured, board=board)}")


def _format_quality(report: dict) -> str:
    lines = []
    for name, numbers in report.items():
        lines.append(name)
        for key, value in numbers.items():
            if isinstance(value, float):
                lines.append(f"  {key}: {value:.3f}")
            elif isinstance(value, dict):
                flat = ", ".join(f"{k} {v:.3f}" for k, v in value.items() if isinstance(v, float))
                lines.append(f"  {key}: {flat}")
    return "\n".join(lines)


def _print_summary(console, result, path: Path, *, reused: bool = False) -> None:
    """The run's table and timings on stderr; ``reused``: ``result`` is a stored run's, not this one's."""
    from rich.markup import escape
    from rich.table import Table

    from vwbench.progress import print_plain, print_table

    # escape(): task, dataset, method and concept names are users' text, never rich markup
    fracture = f", delta {result.fracture['delta']:g}" if result.fracture and isinstance(result.fracture.get("delta"), (int, float)) else ""
    table = Table(title=escape(f"{result.task} on {result.dataset}  ({result.transfer}, {result.n_trials} trial(s), {result.steps} steps{fracture})"))
    table.add_column("concept")
    table.add_column(escape(result.metric), justify="right")
    for concept in _concept_order(result):
        table.add_row(escape(concept), f"{result.per_concept[concept]:.3f}")
    low, high = result.ci95
    table.add_row("[bold]mean", f"[bold]{result.value:.3f}  [{low:.3f}, {high:.3f}]")
    print_table(console, table)
    for name, value in result.metrics.items():
        print_plain(console, f"{name}: {value:.3f}")
    print_stored_run_footer(console, result, path, reused=reused)


def _concept_order(result) -> list[str]:
    """``per_concept``'s concepts in the dataset's order, which ``per_word`` keeps (a stored
    result's ``per_concept`` is read back from JSON with its keys sorted)."""
    ordered = dict.fromkeys(str(w["concept"]) for w in result.per_word if w.get("concept") in result.per_concept)
    return [*ordered, *(c for c in result.per_concept if c not in ordered)]


from vwbench.commands.bench import register as _register_commands  # noqa: E402  (validate, leaderboard, check)

_register_commands(app)


def _interrupted() -> None:
    from vwbench.interrupts import state
    from vwbench.results import journal

    if state.terminated:  # SIGTERM, routed through Ctrl-C's path (vwbench.interrupts)
        print(f"terminated: {journal.summary()}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    print(f"interrupted: {journal.summary()}", file=sys.stderr)
    sys.exit(130)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """An error raised because a Ctrl-C or SIGTERM interrupted something (a C extension's import
    turns the KeyboardInterrupt into "ImportError: initialization failed"): a SIGTERM was
    recorded, or a KeyboardInterrupt is in the exception's chain."""
    from vwbench.interrupts import state

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return state.terminated


def entry() -> None:
    """The ``vwbench`` command (and ``python -m vwbench``): :func:`main`, then, the command done (a
    result stored and its path printed), a Ctrl-C or SIGTERM that lands while the interpreter
    shuts down (joining threads, freeing libraries) is ignored, so a script does not see a
    finished run end with 130 or 143 and a stray traceback. Not in :func:`main` itself, which
    tests call in their own process."""
    main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _command_path(args: list[str]) -> str:
    """``vwbench SUB [SUBSUB]`` as far as ``args`` name commands (for errors click raises before it
    knows the command, such as an option missing its value)."""
    command, path = typer.main.get_command(app), ["vwbench"]
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command = sub
        path.append(arg)
    return " ".join(path)


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2, and Ctrl-C
    (exit 130) or SIGTERM (exit 143) into one line saying what was saved."""
    from vwbench.interrupts import route_sigterm

    route_sigterm()
    try:
        # without standalone mode, typer turns Ctrl-C and `raise typer.Exit(n)` into a return value
        code = app(standalone_mode=False)
        if code == 130:
            _interrupted()
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:
        # click's own errors (typer vendors click, so match them by interface, not by class)
        if type(exc).__name__ == "Abort" or _caused_by_interrupt(exc):
            _interrupted()
        if callable(getattr(exc, "format_message", None)) and getattr(exc, "exit_code", None) == 2:
            # a usage error (missing or malformed option): one line, like every other bad input
            if type(exc).__name__ == "NoSuchOption" and getattr(exc, "possibilities", None):
                # click offers anything 60% alike (`--bogus`: "Possible options: --out"); keep real near-misses
                exc.possibilities = difflib.get_close_matches(exc.option_name, exc.possibilities, cutoff=0.75)
            ctx, message = getattr(exc, "ctx", None), exc.format_message().rstrip(".")
            command = ctx.command_path if ctx is not None else _command_path(sys.argv[1:])
            if message:  # none when a group was called without a command: its help is printed
                print(f"error: {message}; see '{command} --help'", file=sys.stderr)
            sys.exit(2)
        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise

if __name__ == "__main__":
    entry()
