"""Regression checks: re-run a stored leaderboard's check subset and compare (``vwbench check``).

A leaderboard written with ``--check SPEC`` stores, in ``leaderboard.json``'s ``check`` section,
the runs to repeat (task, dataset, transfer, steps, trials, seed), their values and an absolute
``tolerance``. :func:`run_check` repeats each run from scratch on the CPU in a fresh folder
(a temporary one, or an empty ``--out``: nothing cached is reused) and reports every value that
dropped by more than the tolerance.
"""

from __future__ import annotations

import fnmatch
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vwbench.errors import UserError
from vwbench.leaderboard.build import read_leaderboard

# a drop equal to the tolerance passes; float subtraction (0.5 - 0.48 = 0.020000000000000018) must not fail it
_ROUNDING = 1e-9
_ENTRY_FIELDS = {"dataset": str, "task": str, "transfer": str, "steps": int, "n_trials": int, "seed": int, "value": (int, float)}


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
    def failed(self) -> bool:
        return self.drop > self.tolerance + _ROUNDING


def check_section(results: dict[str, dict[str, Any]], specs: list[str], tolerance: float) -> dict[str, Any]:
    """The ``check`` section for the results matching ``specs`` (``DATASET:TASK:TRANSFER``, each
    part a glob; ``all`` for every result). A study task's name holds a colon itself
    (``synth-imagenet:probe:clip:probe``): the first part is the dataset, the last the transfer."""
    if not _valid_tolerance(tolerance):
        raise UserError(f"--tolerance {tolerance}: give a finite number >= 0 (an absolute drop in metric units)")
    entries = []
    for spec in specs:
        parts = ["*", "*", "*"] if spec == "all" else spec.split(":")
        if len(parts) > 3:
            parts = [parts[0], ":".join(parts[1:-1]), parts[-1]]
        if len(parts) != 3:
            raise UserError(f"--check {spec!r}: use DATASET:TASK:TRANSFER (globs allowed, e.g. 'synth-coco:*:lstsq') or 'all'")
        matched = [
            (rid, r) for rid, r in results.items()
            if all(fnmatch.fnmatchcase(v, p) for v, p in zip((r["dataset"], r["task"], r["transfer"]), parts))
        ]
        if not matched:
            raise UserError(f"--check {spec!r} matches no result")
        for rid, r in matched:
            entry = {k: r[k] for k in ("dataset", "task", "transfer", "steps", "n_trials", "seed", "value")}
            params = r.get("transfer_params") or {}
            submission = params.get("submission") or {}
            if submission.get("path"):  # re-run a submission from where it was run
                entry["transfer_path"] = submission["path"]
            embeddings = params.get("embeddings") or {}
            if embeddings.get("path"):  # submitted words: evaluated again from their file, by the transfer that carried them
                entry["embeddings_path"] = embeddings["path"]
                entry.setdefault("transfer_path", embeddings.get("transfer"))
            if r.get("study"):  # a study task (vwbench.studies), re-run by its own runner
                entry["study"] = r["study"]["family"]
            entry["result"] = rid
            if entry not in entries:  # specs that overlap store a run once
                entries.append(entry)
    return {"tolerance": tolerance, "device": "cpu", "entries": entries}


def load_check(baseline: Path) -> dict[str, Any]:
    board = read_leaderboard(baseline, f"--baseline {baseline}")
    check = board.get("check")
    if not check or not isinstance(check, dict) or not check.get("entries"):
        raise UserError(f"--baseline {baseline}: it stores no check subset; regenerate it with `vwbench leaderboard ... --check SPEC`")
    problem = _check_problem(check)
    if problem:
        raise UserError(f"--baseline {baseline}: malformed check section ({problem}); regenerate it with `vwbench leaderboard ... --check SPEC`")
    return check


def _valid_tolerance(value: Any) -> bool:
    """A finite number >= 0 (not a bool, not NaN: a NaN tolerance would pass every check)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def _check_problem(check: dict[str, Any]) -> str | None:
    """What is wrong with a stored check section, or None."""
    tolerance = check.get("tolerance")
    if not _valid_tolerance(tolerance):
        return f"tolerance {tolerance!r} is not a finite number >= 0"
    entries = check["entries"]
    if not isinstance(entries, list):
        return "entries is not a list"
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            return f"entry {i} is not an object"
        for name, kind in _ENTRY_FIELDS.items():
            if isinstance(e.get(name), bool) or not isinstance(e.get(name), kind):
                return f"entry {i}: {name} missing or not a {getattr(kind, '__name__', 'number')}"
        if "tolerance" in e and not _valid_tolerance(e["tolerance"]):
            return f"entry {i}: tolerance {e['tolerance']!r} is not a finite number >= 0"
    return None


def run_check(baseline: Path, tasks_dir: Path | None = None, out_dir: Path | None = None, weights_dir: Path | None = None, data_root: Path | None = None, log=print) -> list[CheckRow]:
    """Repeat the baseline's check runs; one :class:`CheckRow` each."""
    from vwbench.progress import NullReporter
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, run_task

    check = load_check(baseline)
    if out_dir is not None and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        raise UserError(f"--out {out_dir}: not empty; `vwbench check` re-runs from scratch, so give a new or empty folder (or leave --out out)")
    registry = TaskRegistry.from_dir(tasks_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vwbench-check-") as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp)
        for e in check["entries"]:
            if e.get("study"):  # a study task: its own runner
                from vwbench.studies.runner import rerun_for_check

                result = rerun_for_check(e, registry, out, weights_dir, data_root)
            else:
                spec = registry.get(e["task"], e["dataset"])
                embeddings = e.get("embeddings_path")
                options = RunOptions(
                    transfer=e.get("transfer_path", e["transfer"]), seed=e["seed"], device=check.get("device", "cpu"),
                    steps=None if embeddings else e["steps"], trials=None if embeddings else e["n_trials"],
                    embeddings=Path(embeddings) if embeddings else None,
                    out_dir=out, weights_dir=weights_dir, data_root=data_root, threads=1,
                )
                result, _ = run_task(spec, options, NullReporter())
            row = CheckRow(e["dataset"], e["task"], e["transfer"], e["value"], result.value, float(e.get("tolerance", check["tolerance"])))
            log(f"{row.dataset} {row.task} {row.transfer}: baseline {row.baseline:.4f}, now {row.value:.4f}" + (f"  DROP (> tolerance {row.tolerance:.4f})" if row.failed else ""))
            rows.append(row)
    return rows


def format_drops(rows: list[CheckRow]) -> str:
    failed = [r for r in rows if r.failed]
    lines = [f"{len(failed)} of {len(rows)} checked values dropped beyond their tolerance:", ""]
    header = ("dataset", "task", "transfer", "baseline", "now", "drop", "tolerance")
    table = [header] + [(r.dataset, r.task, r.transfer, f"{r.baseline:.4f}", f"{r.value:.4f}", f"{r.drop:.4f}", f"{r.tolerance:.4f}") for r in failed]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
