"""Regression checks: re-run a stored leaderboard's check subset and compare (``vwbench check``).

A leaderboard written with ``--check SPEC`` stores, in ``leaderboard.json``'s ``check`` section,
the runs to repeat (task, dataset, transfer, steps, trials, seed, CPU threads), their values and
an absolute ``tolerance``. :func:`run_check` repeats each run from scratch on the CPU, with the
thread count the run recorded (part of the arithmetic), in a fresh folder
(a temporary one, or an empty ``--out``: nothing cached is reused) and reports every value that
moved by more than the tolerance, either way: a metric that rises without a new baseline is as
suspect as one that drops (scoring the wrong boxes, a looser threshold), and a change that moves
numbers on purpose commits its new baseline. Every field of every stored run is validated first (types,
ranges, finite values): a damaged baseline is a one-line error, never a crash inside a run.

An ``--out`` folder is marked as a check's own (``.vwbench-check.json``: which runs, and whether
the check finished). An interrupted check resumes from its own work when the same command is run
again; any other non-empty folder (stored runs of ``vwbench run``, a finished check, a check of
other runs) is refused, since its stored results would be read back instead of re-run. Without
``--out`` the work is in a temporary folder that is deleted, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import math
import re
import shlex
import tempfile
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vwbench.errors import UserError
from vwbench.jsonio import read_json
from vwbench.leaderboard.build import read_leaderboard
from vwbench.leaderboard.collect import one_line as _one_line
from vwbench.leaderboard.collect import submitted_records
from vwbench.results.schema import printable, unpublishable

# a change equal to the tolerance passes; float subtraction (0.5 - 0.48 = 0.020000000000000018) must not fail it
_ROUNDING = 1e-9
_NAME_FIELDS = ("dataset", "task", "transfer")  # non-empty strings
_COUNT_FIELDS = {"steps": 0, "n_trials": 1}  # integers, at least this
_OPTIONAL_TEXT_FIELDS = ("transfer_path", "embeddings_path", "study", "result")  # a non-empty string, null or absent
_RUN_FIELDS = ("dataset", "task", "transfer", "steps", "n_trials", "seed", "transfer_path", "embeddings_path", "study")  # what a re-run does
_DEVICES = ("cpu", "cuda", "auto")
MARKER = ".vwbench-check.json"  # in --out: this folder holds a `vwbench check`'s own work


@dataclass
class CheckRow:
    dataset: str
    task: str
    transfer: str
    baseline: float
    value: float
    tolerance: float

    @property
    def drop(self) -> float:
        return self.baseline - self.value

    @property
    def change(self) -> float:
        return self.value - self.baseline

    @property
    def failed(self) -> bool:
        return abs(self.change) > self.tolerance + _ROUNDING

    @property
    def verdict(self) -> str:
        """"" within the tolerance, else "DROP" or "RISE"."""
        return "" if not self.failed else "DROP" if self.change < 0 else "RISE"


def check_section(results: dict[str, dict[str, Any]], specs: list[str], tolerance: float) -> dict[str, Any]:
    """The ``check`` section for the results matching ``specs`` (``DATASET:TASK:TRANSFER``, each
    part a glob; ``all`` for every result). A study task's name holds a colon itself
    (``synth-imagenet:probe:clip:probe``): the first part is the dataset, the last the transfer."""
    if not _valid_tolerance(tolerance):
        raise UserError(f"--tolerance {tolerance}: give a finite number >= 0 (an absolute change in metric units)")
    entries = []
    for spec in specs:
        parts = ["*", "*", "*"] if spec == "all" else spec.split(":")
        if len(parts) > 3:
            parts = [parts[0], ":".join(parts[1:-1]), parts[-1]]
        if len(parts) != 3:
            raise UserError(f"--check {spec!r}: use DATASET:TASK:TRANSFER (globs allowed, e.g. 'synth-coco:*:lstsq') or 'all'")
        parts = _as_run_reads(parts, results)
        matched = [
            (rid, r) for rid, r in results.items()
            if all(fnmatch.fnmatchcase(v, p) for v, p in zip((r["dataset"], r["task"], r["transfer"]), parts))
        ]
        if not matched:
            raise UserError(f"--check {spec!r} matches no result" + _no_match_hint(results, parts))
        for rid, r in matched:
            entry = {k: r[k] for k in ("dataset", "task", "transfer", "steps", "n_trials", "seed", "value")}
            threads = _recorded_threads(r)
            if threads is not None:  # thread count is part of the arithmetic: `vwbench check` repeats it
                entry["threads"] = threads
            params = r.get("transfer_params") or {}
            submission = _submitted(r, params, "submission", spec)
            if submission.get("path"):  # re-run a submission from where it was run
                entry["transfer_path"] = submission["path"]
            embeddings = _submitted(r, params, "embeddings", spec)
            if embeddings.get("path"):  # submitted words: evaluated again from their file, by the transfer that carried them
                entry["embeddings_path"] = embeddings["path"]
                if embeddings.get("transfer"):
                    entry.setdefault("transfer_path", embeddings["transfer"])
            for field, option, what in SUBMITTED_FIELDS:
                if field in entry and Path(entry[field]).is_absolute():
                    raise UserError(_absolute_in_spec(spec, r, entry[field], option, what))
            if r.get("study"):  # a study task (vwbench.studies), re-run by its own runner
                entry["study"] = r["study"]["family"]
            entry["result"] = rid
            if entry not in entries:  # specs that overlap store a run once
                entries.append(entry)
    return {"tolerance": tolerance, "device": "cpu", "entries": entries}


MAX_LISTED_NAMES = 12
# a check entry's fields naming submitted files, the `vwbench run` option each came from, and what it is
SUBMITTED_FIELDS = (("transfer_path", "--transfer", "submission"), ("embeddings_path", "--embeddings", "submitted words"))
_GLOB = re.compile(r"[*?[]")


def _as_run_reads(parts: list[str], results: dict[str, dict[str, Any]]) -> list[str]:
    """A spec's dataset and task read as `vwbench run` reads ``--dataset`` and ``--task`` (case,
    ``_`` for ``-``, a dataset's aliases, family aliases such as ``owl``), where the part is a name
    (no glob) that no result has as written; a name that matches no result either way is kept
    for the error to name."""
    from vwbench.registry.loader import normalize_dataset_name, normalize_task_name

    dataset, task, method = parts
    datasets, tasks = {r["dataset"] for r in results.values()}, {r["task"] for r in results.values()}
    if not _GLOB.search(dataset) and dataset not in datasets:
        same = sorted(d for d in datasets if normalize_dataset_name(d) == normalize_dataset_name(dataset))
        if len(same) == 1:  # a dataset of any tasks folder, named as --dataset takes it
            dataset = same[0]
        else:  # a built-in dataset's alias (`mscoco`), from the tasks folder `vwbench run` reads by default
            from vwbench.registry import TaskRegistry

            try:
                canonical = TaskRegistry.from_dir().dataset(dataset).name
            except UserError:
                canonical = None
            dataset = canonical if canonical in datasets else dataset
    if not _GLOB.search(task) and task not in tasks and normalize_task_name(task) in tasks:
        task = normalize_task_name(task)
    return [dataset, task, method]


def _recorded_threads(record: Any) -> int | None:
    """The CPU threads a leaderboard result's run used (its provenance's ``machine.torch_threads``),
    or None where it records none."""
    provenance = record.get("provenance") if isinstance(record, dict) else None
    machine = provenance.get("machine") if isinstance(provenance, dict) else None
    threads = machine.get("torch_threads") if isinstance(machine, dict) else None
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1 else None


def _entry_threads(board: dict[str, Any], entry: dict[str, Any]) -> int:
    """The threads a check entry is repeated with: its own ``threads``; for a board written before
    entries stored them, what its result recorded; else 1."""
    if "threads" in entry:
        return entry["threads"]
    results = board.get("results")
    recorded = _recorded_threads(results.get(entry.get("result"))) if isinstance(results, dict) and isinstance(entry.get("result"), str) else None
    return recorded or 1


def _absolute_in_spec(spec: str, result: dict[str, Any], path: str, option: str, what: str) -> str:
    """Why ``leaderboard --check`` refuses a run of a submission given by an absolute path: `vwbench
    check` would re-run the code at that path in every checkout (someone else's, on CI), not this
    checkout's own."""
    try:
        suggestion = f" (here: {option} {printable(str(Path(path).relative_to(Path.cwd())))})"
    except ValueError:
        suggestion = ""
    return (f"--check {spec!r}: {printable(result['file'])} ran the {what} at the absolute path {printable(path)}, which `vwbench check` "
            f"would re-run in every checkout instead of that checkout's own; run it again with {option} given relative to the project folder{suggestion} "
            "and build the leaderboard again (a stored result is reused and records the new path)")


def _no_match_hint(results: dict[str, dict[str, Any]], parts: list[str]) -> str:
    """Why a spec's method part matched nothing: it matches a result's method name (its
    ``transfer``: a submission's name in submission.yaml, not its path); the names that the spec's
    dataset and task do have, when there are few."""
    dataset, task, method = parts
    in_dataset = [r for r in results.values() if fnmatch.fnmatchcase(r["dataset"], dataset)]
    if not in_dataset:
        return f": no result has dataset {dataset!r} (datasets: {_listed(sorted({r['dataset'] for r in results.values()}))})"
    here = [r for r in in_dataset if fnmatch.fnmatchcase(r["task"], task)]
    if not here:
        return f": no result of dataset {dataset!r} has task {task!r} (tasks: {_listed(sorted({r['task'] for r in in_dataset}))})"
    names = sorted({r["transfer"] for r in here})
    by_path = sorted({r["transfer"] for r in here if any(_matches_path(path, method) for path in _submitted_paths(r))})
    from vwbench.transfer import TRANSFER_METHODS

    submitted = [n for n in names if n not in TRANSFER_METHODS and "+" not in n]  # a submission's own name, not a built-in or words+transfer
    example = (by_path or submitted or names)[0]
    hint = f"; the last part matches a result's method name (its `transfer`, e.g. {_one_line(example)!r}: a submission's `name:` in submission.yaml), not a path"
    if by_path:
        hint += f"; the submission at {method!r} ran as {_listed(by_path)}"
    return hint + f"; names here: {_listed(names)}"


def _listed(names: list[str]) -> str:
    shown = ", ".join(_one_line(n) for n in names[:MAX_LISTED_NAMES])
    return shown + (f" and {len(names) - MAX_LISTED_NAMES} more" if len(names) > MAX_LISTED_NAMES else "")


def _submitted_paths(result: dict[str, Any]) -> list[str]:
    return [r["path"] for r in submitted_records(result.get("transfer_params")).values() if isinstance(r.get("path"), str)]


def _matches_path(path: str, pattern: str) -> bool:
    """``pattern`` names the submission at ``path`` (as given to `vwbench run`, trailing slash or not)."""
    return fnmatch.fnmatchcase(path.rstrip("/"), pattern.rstrip("/"))


def _submitted(result: dict[str, Any], params: dict[str, Any], key: str, spec: str) -> dict[str, Any]:
    """``transfer_params[key]`` of a result (a submission's or submitted words' record), ``{}``
    where there is none; a record whose path or transfer is not text is a one-line error."""
    record = params.get(key) or {}
    ok = isinstance(record, dict) and all(record.get(k) is None or (isinstance(record[k], str) and record[k].strip()) for k in ("path", "transfer"))
    if not ok:
        raise UserError(f"--check {spec!r}: {printable(result['file'])} has a malformed transfer_params.{key} (not an object with a path string); re-run it or move it out of --results")
    return record


def dropped_check_warning(out_dir: Path) -> str | None:
    """A warning where ``out_dir`` holds a leaderboard with a check subset, which a board written
    there without ``--check`` drops (`vwbench check` then refuses it): how many runs, and the
    ``--check`` options that store them again where every entry can be written as a spec."""
    try:
        board = read_json(Path(out_dir) / "leaderboard.json")
    except (OSError, ValueError):
        return None
    check = board.get("check") if isinstance(board, dict) else None
    entries = check.get("entries") if isinstance(check, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    specs = [_spec_of(e) for e in entries]
    tolerance = check.get("tolerance")
    if None in specs or not _valid_tolerance(tolerance):
        how = "the --check specs (and --tolerance) that made it"
    else:
        how = " ".join(f"--check {shlex.quote(spec)}" for spec in dict.fromkeys(specs)) + f" --tolerance {float(tolerance)!r}"
        if any(isinstance(e, dict) and "tolerance" in e for e in entries):
            how += " (and edit its per-run tolerances into leaderboard.json again: --check does not set them)"
    return (f"warning: {printable(str(out_dir))} held a leaderboard with a check subset of {len(entries)} run(s), and this one stores none "
            f"(no --check given), so `vwbench check` will refuse it as a baseline; to keep the subset, run this command again with {how}")


def _spec_of(entry: Any) -> str | None:
    """The ``--check`` spec that matches exactly this stored run's dataset, task and method (glob
    characters escaped), or None where a name cannot be written in one (a colon in the dataset or
    method, text that is not printable)."""
    if not isinstance(entry, dict):
        return None
    names = [entry.get(k) for k in _NAME_FIELDS]
    if not all(isinstance(n, str) and n and _one_line(n) == n for n in names) or ":" in names[0] + names[2]:
        return None
    return ":".join(_GLOB.sub(lambda m: f"[{m.group(0)}]", n) for n in names)


def load_check(baseline: Path) -> dict[str, Any]:
    return _load_board_check(baseline)[1]


def _load_board_check(baseline: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The baseline leaderboard and its validated check section."""
    board = read_leaderboard(baseline, f"--baseline {baseline}")
    check = board.get("check")
    if not check or not isinstance(check, dict) or not check.get("entries"):
        raise UserError(f"--baseline {baseline}: it stores no check subset; regenerate it with `vwbench leaderboard ... --check SPEC`")
    problem = _check_problem(check)
    if problem:
        raise UserError(f"--baseline {baseline}: malformed check section ({problem}); regenerate it with `vwbench leaderboard ... --check SPEC`")
    return board, check


def _valid_tolerance(value: Any) -> bool:
    """A finite number >= 0 (not a bool, not NaN: a NaN tolerance would pass every check)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def _check_problem(check: dict[str, Any]) -> str | None:
    """What is wrong with a stored check section, or None."""
    tolerance = check.get("tolerance")
    if not _valid_tolerance(tolerance):
        return f"tolerance {tolerance!r} is not a finite number >= 0"
    device = check.get("device", "cpu")
    if not isinstance(device, str) or device not in _DEVICES:
        return f"device {printable(repr(device))[:40]} is not one of {', '.join(_DEVICES)}"
    entries = check["entries"]
    if not isinstance(entries, list):
        return "entries is not a list"
    for i, e in enumerate(entries):
        problem = _entry_problem(e)
        if problem:
            names = [e.get(k) for k in _NAME_FIELDS] if isinstance(e, dict) else []
            label = " ".join(printable(n)[:60] for n in names if isinstance(n, str) and n.strip())
            return f"entry {i}" + (f" ({label})" if label else "") + f": {problem}"
    return None


def _entry_problem(e: Any) -> str | None:
    """What is wrong with one stored run (every field a re-run reads), or None."""
    if not isinstance(e, dict):
        return "is not an object"
    for name in _NAME_FIELDS:
        value = e.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"{name} missing or not a non-empty string"
    for name, low in {**_COUNT_FIELDS, "seed": None}.items():
        value = e.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} missing or not an integer"
        if low is not None and value < low:
            return f"{name} {value} is not an integer >= {low}"
    value = e.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"value {printable(repr(value))[:40]} is not a finite number"
    if not e.get("study") and not 0 <= value <= 1:  # a study's headline may be another kind of score
        return f"value {value!r} is outside [0, 1], where every task metric (an accuracy or an mAP) lies"
    threads = e.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        return f"threads {printable(repr(threads))[:40]} is not an integer >= 1"
    if "tolerance" in e and not _valid_tolerance(e["tolerance"]):
        return f"tolerance {printable(repr(e['tolerance']))[:40]} is not a finite number >= 0"
    for name in _OPTIONAL_TEXT_FIELDS:
        value = e.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return f"{name} {printable(repr(value))[:40]} is not a path or name (a non-empty string, or null)"
    return unpublishable({k: e.get(k) for k in (*_NAME_FIELDS, *_OPTIONAL_TEXT_FIELDS)})


def _fingerprint(check: dict[str, Any]) -> str:
    """Which runs a check repeats (not their values or tolerances): an interrupted check resumes
    only into the same runs."""
    # threads only where not 1: a check folder of a board from before entries had them still resumes
    runs = [{k: e.get(k) for k in _RUN_FIELDS} | ({"threads": e["threads"]} if e.get("threads", 1) != 1 else {}) for e in check["entries"]]
    text = json.dumps({"device": check.get("device", "cpu"), "runs": runs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim_out(out: Path, fingerprint: str, log) -> None:
    """Make ``out`` this check's folder: new or empty, or holding this same check's interrupted
    work (resumed); anything else is a one-line :class:`UserError`."""
    from vwbench.results.atomic import atomic_write_json

    shown = printable(str(out))
    # a process killed while writing the marker or probing the folder leaves only a temp file:
    # that folder is still empty as far as a check is concerned
    leftovers = [p for p in out.iterdir() if p.name.startswith((f".{MARKER}.", ".vwbench-write-check.")) and p.name.endswith(".tmp")] if out.is_dir() else []
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    if out.is_dir() and any(out.iterdir()):
        try:
            state = read_json(out / MARKER)
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("vwbench_check") != 1:
            raise UserError(f"--out {shown}: not empty; `vwbench check` re-runs from scratch, so give a new or empty folder (or leave --out out)")
        if state.get("runs") != fingerprint:
            raise UserError(f"--out {shown}: holds the work of a `vwbench check` of other runs (another baseline); give a new or empty folder")
        if state.get("finished"):
            raise UserError(f"--out {shown}: holds a finished `vwbench check`, whose results would be read back instead of re-run; give a new or empty folder")
        log(f"resuming the interrupted check in {shown} (its own saved words and results are reused)")
    atomic_write_json(out / MARKER, {"vwbench_check": 1, "runs": fingerprint, "finished": False})


def _rerun_entry(e: dict[str, Any]) -> dict[str, Any]:
    """The entry as the re-run reads it: a null path is an absent one (the run's own transfer)."""
    return {k: v for k, v in e.items() if v is not None}


def _entry_label(i: int, n: int, e: dict[str, Any]) -> str:
    return f"{i}/{n}: {printable(e['dataset'])} {printable(e['task'])} {printable(e['transfer'])}"


def _sources(e: dict[str, Any]) -> str:
    """The submitted files an entry re-runs, as the start of its progress line's parenthesis:
    ``"submission PATH, "`` and/or ``"words PATH, "`` (as located), or ``""``."""
    from vwbench.transfer import TRANSFER_METHODS

    shown = []
    if e.get("embeddings_path"):
        shown.append(f"words {printable(e['embeddings_path'])}")
    if e.get("transfer_path") and e["transfer_path"] not in TRANSFER_METHODS:
        shown.append(f"submission {printable(e['transfer_path'])}")
    return "".join(f"{text}, " for text in shown)


def _values_text(baseline: float, value: float) -> tuple[str, str]:
    """Both values to 4 decimals, or to as many more as tell two different values apart (a
    flagged change of 3e-6 must not read "0.4897, now 0.4897")."""
    for places in range(4, 18):
        a, b = f"{baseline:.{places}f}", f"{value:.{places}f}"
        if a != b or baseline == value:
            return a, b
    return repr(baseline), repr(value)


def _change_text(change: float) -> str:
    """A change to 4 decimals, or in scientific notation where those would show a nonzero change as 0."""
    return f"{change:+.4f}" if change == 0 or abs(change) >= 1e-4 else f"{change:+.2e}"


def _locate_submissions(entries: list[dict[str, Any]], root: Path | None, baseline: Path) -> list[dict[str, Any]]:
    """The entries with each stored submission path read from ``root`` (default: the current
    folder): a path that is not there is a one-line :class:`UserError` naming the entry, not a
    run's ``--transfer`` error (the user gave no --transfer)."""
    from vwbench.transfer import TRANSFER_METHODS

    located = []
    for i, e in enumerate(entries, 1):
        e = dict(e)
        for field, option, what in SUBMITTED_FIELDS:
            stored = e.get(field)
            if stored is None or (field == "transfer_path" and stored in TRANSFER_METHODS):
                continue
            if Path(stored).is_absolute():  # would run that folder's code, never this checkout's (and --root would not apply)
                raise UserError(
                    f"--baseline {printable(str(baseline))}: check entry {_entry_label(i, len(entries), e)} re-runs the {what} at the absolute path "
                    f"{printable(stored)}, which names one checkout, not this one's; make its run again with {option} given relative to the project "
                    "folder and write the baseline again with `vwbench leaderboard ... --check`"
                )
            path = Path(stored) if root is None else Path(root) / stored
            if not path.exists():
                where = f"the current folder ({printable(str(Path.cwd()))})" if root is None else f"--root {printable(str(root))}"
                raise UserError(
                    f"--baseline {printable(str(baseline))}: check entry {_entry_label(i, len(entries), e)} re-runs the {what} at {printable(stored)}, "
                    f"read relative to {where}, where there is no such file or folder: if it was deleted or renamed, restore it; if the "
                    "baseline's runs were made in another folder, run `vwbench check` from there or give that folder with --root DIR"
                )
            e[field] = str(path)
        located.append(e)
    return located


class _StageLog:
    """A run's progress as plain lines (CI logs): one per stage as it starts, and the run's own
    messages, each prefixed with the check entry it belongs to."""

    def __init__(self, prefix: str, log: Callable[[str], None]) -> None:
        self.prefix, self.log_line = prefix, log

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Any]:
        from vwbench.progress import NullReporter

        self.log_line(f"{self.prefix}: {name}")
        with NullReporter().stage(name, total) as stage:
            yield stage

    def log(self, message: str) -> None:
        self.log_line(f"{self.prefix}: {message}")


def _resolve_entries(entries: list[dict[str, Any]], registry, given_tasks_dir: bool = True) -> list[Any]:
    """Each entry's task spec from ``registry`` (a study entry's from the folder's studies), so
    that a task or dataset the tasks folder lacks is a one-line error before anything is written
    (with the --tasks-dir hint for an unknown dataset where no tasks folder was given)."""
    studies = None
    specs = []
    for e in entries:
        try:
            if e.get("study"):
                if studies is None:
                    from vwbench.registry.studies import StudyRegistry

                    studies = StudyRegistry.from_dir(tasks=registry)
                specs.append(studies.get(e["task"], e["dataset"]))
            else:
                specs.append(registry.get(e["task"], e["dataset"]))
        except UserError as exc:  # a board made from runs of a tasks folder of one's own
            if not given_tasks_dir and str(exc).startswith("unknown dataset"):
                raise UserError(f"{exc}; if the baseline's runs used their own tasks folder, pass it with --tasks-dir (this check read {registry.root})") from exc
            raise
    return specs


def _log_to_logger(message: str) -> None:
    import logging

    logging.getLogger("vwbench").info("%s", message)


def run_check(baseline: Path, tasks_dir: Path | None = None, out_dir: Path | None = None, weights_dir: Path | None = None, data_root: Path | None = None,
              log: Callable[[str], None] = _log_to_logger, root: Path | None = None) -> list[CheckRow]:
    """Repeat the baseline's check runs; one :class:`CheckRow` each, with a line on ``log`` (default:
    the ``vwbench`` logger, at INFO) as each starts and as each of its stages starts. The baseline, the tasks folder, every entry's
    task and every stored submission path (read from ``root``, default the current folder) are
    checked before ``out_dir`` is claimed (marked as this check's): bad input leaves no marker behind."""
    from vwbench.registry import TaskRegistry
    from vwbench.results import journal
    from vwbench.results.atomic import atomic_write_json
    from vwbench.runner import RunOptions, run_task

    board, check = _load_board_check(baseline)
    stored = [{**_rerun_entry(e), "threads": _entry_threads(board, e)} for e in check["entries"]]
    fingerprint = _fingerprint({**check, "entries": stored})
    registry = TaskRegistry.from_dir(tasks_dir)
    entries = _locate_submissions(stored, root, baseline)
    import os

    from vwbench.registry.loader import TASKS_DIR_ENV

    specs = _resolve_entries(entries, registry, given_tasks_dir=tasks_dir is not None or bool(os.environ.get(TASKS_DIR_ENV)))
    if out_dir is not None:
        from vwbench.results.atomic import ensure_output_dir

        ensure_output_dir(Path(out_dir))  # made only now: bad input above leaves no folder either
        _claim_out(Path(out_dir), fingerprint, log)
    rows = []
    with (tempfile.TemporaryDirectory(prefix="vwbench-check-") if out_dir is None else contextlib.nullcontext(str(out_dir))) as tmp:
        out = Path(tmp)
        try:
            for i, (e, spec) in enumerate(zip(entries, specs), 1):
                label = "check " + _entry_label(i, len(entries), e)
                log(f"{label} ({_sources(e)}steps {e['steps']}, trials {e['n_trials']}, seed {e['seed']}, threads {e['threads']}) ...")
                if e.get("study"):  # a study task: its own runner
                    from vwbench.studies.runner import rerun_for_check

                    result = rerun_for_check(e, registry, out, weights_dir, data_root, _StageLog(label, log))
                else:
                    embeddings = e.get("embeddings_path")
                    options = RunOptions(
                        transfer=e.get("transfer_path", e["transfer"]), seed=e["seed"], device=check.get("device", "cpu"),
                        steps=None if embeddings else e["steps"], trials=None if embeddings else e["n_trials"],
                        embeddings=Path(embeddings) if embeddings else None,
                        out_dir=out, weights_dir=weights_dir, data_root=data_root, threads=e["threads"],
                    )
                    result = run_task(spec, options, _StageLog(label, log)).result
                row = CheckRow(e["dataset"], e["task"], e["transfer"], e["value"], result.value, float(e.get("tolerance", check["tolerance"])))
                baseline_text, now_text = _values_text(row.baseline, row.value) if row.failed else (f"{row.baseline:.4f}", f"{row.value:.4f}")
                log(f"{printable(row.dataset)} {printable(row.task)} {printable(row.transfer)}: baseline {baseline_text}, now {now_text}"
                    + (f", change {_change_text(row.change)}  {row.verdict} (> tolerance {row.tolerance:.4f})" if row.failed else ""))
                rows.append(row)
        except KeyboardInterrupt:
            if out_dir is None:  # what was saved is in the temporary folder, deleted on the way out
                for path, _ in journal.saved():
                    if Path(path).is_relative_to(tmp):
                        journal.forget(Path(path))
                log("vwbench check: stopped; without --out its work was in a temporary folder, now deleted. Give --out DIR to keep a check's work: the same command then resumes it")
            raise
    if out_dir is not None:  # a finished check's folder is not re-used: its results would be read back
        atomic_write_json(Path(out_dir) / MARKER, {"vwbench_check": 1, "runs": fingerprint, "finished": True})
    return rows


def format_drops(rows: list[CheckRow]) -> str:
    failed = [r for r in rows if r.failed]
    lines = [f"{len(failed)} of {len(rows)} checked values moved beyond their tolerance (a rise fails too: "
             "commit a new baseline with a change that moves numbers on purpose):", ""]
    header = ("dataset", "task", "transfer", "baseline", "now", "change", "tolerance")
    table = [header] + [(r.dataset, r.task, r.transfer, *_values_text(r.baseline, r.value), _change_text(r.change), f"{r.tolerance:.4f}") for r in failed]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
