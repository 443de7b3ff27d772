"""Gather result files into leaderboard entries; files that are not valid results are listed as
skipped (with the reason), never fatal: one bad file cannot stop or corrupt a leaderboard.
For one unit (dataset, task, transfer name) one result is kept: the one with the most steps, then
the most trials, then the newest. Every other is superseded, never silently: :class:`Superseded`
records which file replaced it, why, and what differs that makes the two incomparable (seed,
settings, or a different submitted file under one name), and :func:`supersede_warnings` says so
once per unit.

Runs of the fracturing experiment (words held within a delta of an anchor) are skipped too: they
are not a transfer method's score (``vwbench delta-sweep`` tables them).

A study result may hold a NaN secondary metric: one undefined on its data (a probe's accuracy over
no test rows, an SAE's stability over a frequency bucket with no concepts). Such a result is kept,
and the metric is shown as missing (``None``: ``null`` in leaderboard.json); its headline value
and CI must still be finite, and every other number too."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vwbench.analysis import is_default_analysis_file
from vwbench.errors import UserError
from vwbench.results.schema import RunResult, printable, read_result, unpublishable

MAX_RESULT_BYTES = 20 * 2**20
MAX_SAMPLES_PER_CONCEPT = 4
SAMPLE_PIXELS = 96
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Entry:
    """One result file: its parsed result, where it is, and its sha256."""

    result: RunResult
    file: str  # relative to the results folder
    sha256: str
    samples: dict[str, list[str]] = field(default_factory=dict)  # concept -> PNG data URIs

    @property
    def created(self) -> str:
        return self.result.provenance.created


@dataclass
class Superseded:
    """A result replaced by another run of its unit: ``why`` says which rule kept the other and
    what differs between the two; ``differs`` names those differences (``seed``, ``settings``,
    ``submission``) for tools."""

    file: str
    kept: str
    why: str
    differs: list[str]
    dataset: str
    task: str
    transfer: str

    def record(self) -> dict[str, Any]:
        return {"file": self.file, "kept": self.kept, "why": self.why, "differs": self.differs,
                "dataset": self.dataset, "task": self.task, "transfer": self.transfer}


@dataclass
class Collected:
    entries: list[Entry]
    skipped: list[tuple[str, str]]  # (file, reason)
    superseded_by: list[Superseded] = field(default_factory=list)  # results replaced by a longer or newer run of the same unit

    @property
    def superseded(self) -> list[str]:
        return sorted(s.file for s in self.superseded_by)


def _thumbnail(path: Path) -> str | None:
    """A re-encoded PNG thumbnail as a data URI (the file's own bytes are never embedded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size > 10 * 2**20:
            return None
        with Image.open(path) as im:
            if im.width * im.height > 40_000_000:
                return None
            im = im.convert("RGB")
            im.thumbnail((SAMPLE_PIXELS, SAMPLE_PIXELS))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _samples(result_file: Path, concepts: list[str]) -> dict[str, list[str]]:
    """Sample generations beside a result: ``<result stem>.samples/<concept>*.png``, when present."""
    folder = result_file.with_suffix(".samples")
    if not folder.is_dir():
        return {}
    out: dict[str, list[str]] = {}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink())
    for concept in concepts:
        # "<concept>.png" or "<concept>-<n>.png": concept "a" must not take "a-b-0.png" of concept "a-b"
        mine = [p for p in files if p.stem == concept or re.fullmatch(re.escape(concept) + r"-\d+", p.stem)][:MAX_SAMPLES_PER_CONCEPT]
        uris = [u for u in (_thumbnail(p) for p in mine) if u]
        if uris:
            out[concept] = uris
    return out


def published_metrics(result: RunResult) -> dict[str, float | None]:
    """A result's secondary metrics as a leaderboard shows them: a study's NaN metric is undefined
    on its data and shown as missing (``None``; an infinite one stays, and is refused as not
    publishable). A word result's
    secondary metrics are means over its words, always defined: it keeps them as they are."""
    if result.study is None:
        return dict(result.metrics)
    return {name: None if math.isnan(value) else value for name, value in result.metrics.items()}


def _read(path: Path) -> RunResult:
    """A result a leaderboard can publish (see the module docstring); otherwise a
    :class:`UserError` saying what is wrong."""
    try:
        return read_result(path, publishable=True)
    except UserError as refused:
        result = read_result(path)  # a file that is not a result at all: the same error as before
        if result.study is None or None not in published_metrics(result).values():
            raise refused from None
        problem = unpublishable({**result.model_dump(), "metrics": published_metrics(result)})  # every other number must be finite
        if problem:
            raise UserError(f"{path}: invalid result file: {problem}") from None
        return result


def _rank_key(e: Entry) -> tuple:
    return (e.result.steps, e.result.n_trials, e.created)


# the run's own count fields, compared (and reported) on their own: not "settings"
_COUNTED = {("hyperparameters", "seed"), ("hyperparameters", "steps"), ("hyperparameters", "trials"), ("study", "seed")}


def _flat(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, (*prefix, str(key))).items()}
    return {prefix: value}


def _settings(e: Entry) -> dict[tuple[str, ...], Any]:
    """A result's recorded settings (word training and evaluation, or a study's), flattened,
    without the seed, steps and trials; empty for results written before settings were kept."""
    r = e.result
    nested = {**r.provenance.settings, **({"study": r.study.settings} if r.study is not None and r.study.settings else {})}
    return {k: v for k, v in _flat(nested).items() if k[-2:] not in _COUNTED}


SUBMITTED_KINDS = ("submission", "embeddings")  # transfer_params' records of a submitted method or map, and of submitted words


def submitted_records(transfer_params: Any) -> dict[str, dict[str, Any]]:
    """The records of what a result's run was given (``submission``: a transfer method or linear
    map; ``embeddings``: words), by kind; a result's transfer_params are free-form, so anything
    that is not such a record is left out."""
    params = transfer_params if isinstance(transfer_params, dict) else {}
    return {kind: params[kind] for kind in SUBMITTED_KINDS if isinstance(params.get(kind), dict)}


def _submitted_sha(e: Entry) -> dict[str, str]:
    """The sha256 of what was submitted, by kind (see :func:`submitted_records`)."""
    records = submitted_records(e.result.transfer_params)
    return {kind: r["sha256"] for kind, r in records.items() if isinstance(r.get("sha256"), str) and r["sha256"]}


def _rank_reason(kept: Entry, other: Entry) -> str:
    """Which rule kept ``kept`` over ``other`` (the order of :func:`_rank_key`)."""
    k, o = kept.result, other.result
    if k.steps != o.steps:
        return f"the kept run has more steps ({k.steps} vs {o.steps})"
    if k.n_trials != o.n_trials:
        return f"the kept run has more trials ({k.n_trials} vs {o.n_trials})"
    if kept.created != other.created:
        return f"the kept run is newer ({kept.created} vs {other.created})"
    return "a tie on steps, trials and creation time: the later file name is kept"


def _differences(kept: Entry, other: Entry) -> dict[str, str]:
    """What makes ``other`` a different experiment from ``kept`` rather than an older or shorter
    run of it: ``{"seed" | "settings" | "submission": description}``."""
    out = {}
    if kept.result.seed != other.result.seed:
        out["seed"] = f"seed {kept.result.seed} (kept) vs {other.result.seed}"
    mine, theirs = _settings(kept), _settings(other)
    if mine and theirs and mine != theirs:  # a result without recorded settings cannot be compared
        keys = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        shown = ", ".join(f"{'.'.join(k)} {mine.get(k, '–')} (kept) vs {theirs.get(k, '–')}" for k in keys[:3])
        out["settings"] = "settings " + shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    mine_sha, theirs_sha = _submitted_sha(kept), _submitted_sha(other)
    changed = [kind for kind in sorted(mine_sha.keys() | theirs_sha.keys()) if mine_sha.get(kind) != theirs_sha.get(kind)]
    if changed:
        out["submission"] = " and ".join(
            f"{_SUBMITTED[kind]} under the same name (sha256 {mine_sha.get(kind, '–')[:12]} (kept) vs {theirs_sha.get(kind, '–')[:12]})" for kind in changed
        )
    return out


_SUBMITTED = {"submission": "another submitted transfer method or map", "embeddings": "other submitted words"}


def _supersede(group: list[Entry]) -> tuple[Entry, list[Superseded]]:
    """The kept entry of one unit and a record of every other."""
    group = sorted(group, key=_rank_key)
    kept, r = group[-1], group[-1].result
    records = []
    for other in group[:-1]:
        differences = _differences(kept, other)
        why = "; ".join([_rank_reason(kept, other), *(f"differs: {d}" for d in differences.values())])
        records.append(Superseded(other.file, kept.file, why, list(differences), r.dataset, r.task, r.transfer))
    return kept, records


def one_line(text: str) -> str:
    """Text from a result file (anyone can write one) as printable text on one line."""
    return " ".join(printable(text).split())


def supersede_warnings(records: list[dict[str, Any]]) -> list[str]:
    """One line per unit whose kept result and a superseded one are different experiments
    (``records``: leaderboard.json's ``superseded_by``; boards written before it have none)."""
    by_unit: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("differs"):
            by_unit.setdefault((rec["dataset"], rec["task"], rec["transfer"]), []).append(rec)
    lines = []
    for (dataset, task, transfer), recs in by_unit.items():
        differs = {d for rec in recs for d in rec["differs"]}
        others = ", ".join(rec["file"] for rec in recs[:3]) + (f" and {len(recs) - 3} more" if len(recs) > 3 else "")
        unit = f"warning: {one_line(dataset)} {one_line(task)} {one_line(transfer)}: kept {one_line(recs[0]['kept'])} over {one_line(others)}"
        advice = []
        if "submission" in differs:
            advice.append(f"they are different submissions under the one name '{one_line(transfer)}' (their sha256 differ), and the board shows only the kept one: "
                          "if they are two methods, rename one (`name:` in a method's submission.yaml, `name` in a linear map's or embeddings file's safetensors metadata) and run it again; "
                          "if it is a new version of one method, remove the old result from --results")
        settings = [name for key, name in (("seed", "seeds"), ("settings", "settings")) if key in differs]
        if settings:
            advice.append(f"their {' and '.join(settings)} differ, so the table mixes settings: remove the run you do not want from --results, or run them all with the same settings")
        lines.append(f"{unit}: {'; '.join(advice)} (see 'Superseded results' in the board)")
    return lines


MAX_NAMED_METHODS = 4


def mixed_run_warnings(board: dict[str, Any]) -> list[str]:
    """One line per pair table whose ranked rows were run with different steps or trials: the
    table mixes settings, as :func:`supersede_warnings` says of one method's runs with other
    seeds. Rows of 0 steps (submitted words, not trained here) are left out."""
    results = board.get("results") or {}
    lines = []
    for dataset, data in board["datasets"].items():
        for task, pair in data["pairs"].items():
            trained = [(row["method"], results[row["result"]]) for row in pair["rows"] if results.get(row["result"], {}).get("steps")]
            differs = []
            for key, word in (("steps", "steps"), ("n_trials", "trials")):
                by_value: dict[int, list[str]] = {}
                for method, record in trained:
                    by_value.setdefault(record[key], []).append(one_line(method))
                if len(by_value) > 1:
                    differs.append(f"{word} (" + "; ".join(f"{value}: {_named(methods)}" for value, methods in sorted(by_value.items())) + ")")
            if differs:
                lines.append(f"warning: {one_line(dataset)} {one_line(task)}: its ranked rows were run with different {' and '.join(differs)}, so the table "
                             "mixes settings: run them all with the same --steps and --trials, or remove the runs you do not want from --results")
    return lines


def _named(methods: list[str]) -> str:
    return ", ".join(sorted(methods)[:MAX_NAMED_METHODS]) + (f" and {len(methods) - MAX_NAMED_METHODS} more" if len(methods) > MAX_NAMED_METHODS else "")


def _one_metric_per_pair(units: dict[tuple[str, str, str], list[Entry]], results_dir: Path) -> None:
    """A leaderboard ranks the results of one task on one dataset by one metric: results scored
    by different ones (a tier set to ``map50`` beside one on ``map``) are a one-line error naming
    a file of each, not a ranking of numbers that do not compare."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for (dataset, task, _), group in units.items():
        for e in group:
            seen.setdefault((dataset, task), {}).setdefault(e.result.metric, e.file)
    for (dataset, task), metrics in sorted(seen.items()):
        if len(metrics) > 1:
            listing = ", ".join(f"{metric} ({file})" for metric, file in sorted(metrics.items()))
            raise UserError(
                f"--results {results_dir}: {task} on {dataset} holds results scored by different metrics: {listing}; "
                "a leaderboard ranks one metric per task: move one kind to another folder"
            )


def collect(results_dir: Path) -> Collected:
    """Every ``*.json`` under ``results_dir`` that is a valid result; for one unit (dataset, task,
    transfer) the run with the most steps, then trials, then the newest, is kept, and every other
    is recorded as superseded (see the module docstring)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"--results {results_dir}: not a folder (give the folder `vwbench run` wrote its results to, e.g. runs/results)")
    skipped: list[tuple[str, str]] = []
    units: dict[tuple[str, str, str], list[Entry]] = {}
    for path in sorted(results_dir.rglob("*.json")):
        rel = printable(str(path.relative_to(results_dir)))  # an undecodable byte of a name is shown as a backslash escape
        if path.is_symlink() or not path.is_file():
            skipped.append((rel, "not a regular file"))
            continue
        if path.stat().st_size > MAX_RESULT_BYTES:
            skipped.append((rel, f"over {MAX_RESULT_BYTES} bytes"))
            continue
        if rel != str(path.relative_to(results_dir)):
            skipped.append((rel, "its path is not valid UTF-8, so a leaderboard cannot cite it; rename it"))
            continue
        try:
            # publishable: a NaN or infinite number, or text that is not valid UTF-8, cannot go into a
            # leaderboard (strict JSON, README.md, index.html): such a file is skipped, not fatal
            result = _read(path)
        except UserError as exc:
            # `vwbench analyze` writes beside the results; a board's own file when --out is inside --results
            if not is_default_analysis_file(path) and path.name != "leaderboard.json":
                skipped.append((rel, printable(str(exc).replace(str(path), "").lstrip(": "))[:300]))
            continue
        if result.fracture is not None:
            skipped.append((rel, f"a delta-constrained run (delta {result.fracture.get('delta')}): see `vwbench delta-sweep` for those"))
            continue
        if isinstance(result.transfer_params, dict) and "method_object" in result.transfer_params:  # runner.OBJECT_RECORD
            made_by = (result.transfer_params["method_object"] or {}).get("class", "?") if isinstance(result.transfer_params["method_object"], dict) else "?"
            skipped.append((rel, f"made by a method object from Python ({printable(str(made_by))[:100]}), whose code no file holds: "
                                 "submit the method as a folder (submissions/README.md) to rank it"))
            continue
        if not all(math.isfinite(v) for v in (result.value, *result.ci95)):
            skipped.append((rel, f"its value or CI is not a finite number ({result.value}, {list(result.ci95)})"))
            continue
        entry = Entry(result, rel, hashlib.sha256(path.read_bytes()).hexdigest(), _samples(path, list(result.per_concept)))
        units.setdefault((result.dataset, result.task, result.transfer), []).append(entry)
    _one_metric_per_pair(units, results_dir)
    entries, superseded = [], []
    for group in units.values():
        kept, records = _supersede(group)
        entries.append(kept)
        superseded += records
    if not entries:
        raise UserError(f"--results {results_dir}: no valid result files found" + (f" ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    return Collected(sorted(entries, key=lambda e: (e.result.dataset, e.result.task, e.result.transfer)), skipped, sorted(superseded, key=lambda s: s.file))
