"""The leaderboard as data (``leaderboard.json``, schema ``vwbench.leaderboard/1``).

Per dataset: a table per ordered pair (every method's value with its 95% CI and rank, and the
in-domain ceiling: the target model's own word), a summary over the cross-model pairs, and a
source x target grid per method (the paper's Figure 3). Study results (``vwbench.studies``:
probe, align, sae) go to ``studies``: per family and dataset, one ranked row per result with
the family's main metrics as columns, and each result's tables. Every number cites a result id;
the ``results`` section holds each result's file, sha256 and provenance. ``superseded_by``
(added in schema 1; absent from boards written before it) says, for each result that another run
of its dataset, task and method replaced, which file was kept and why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import vwbench
from vwbench.errors import UserError
from vwbench.jsonio import read_json
from vwbench.leaderboard.collect import Collected, Entry, published_metrics
from vwbench.results.provenance import utc_now

SCHEMA = "vwbench.leaderboard/1"
SCHEMA_VERSION = 1
IN_DOMAIN = "in-domain"
FAMILY_ORDER = ("sd", "owlv2", "clip")
PREFERRED_GRID_METHODS = ("lstsq",)


def read_leaderboard(path: Path, label: str) -> dict[str, Any]:
    """A ``leaderboard.json`` of this schema; anything else is a :class:`UserError` that starts
    with ``label`` (how the caller names the file)."""
    try:
        board = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{label}: not a readable leaderboard.json ({exc}); write it again with `vwbench leaderboard`") from None
    if not isinstance(board, dict) or board.get("schema") != SCHEMA:
        found = board.get("schema") if isinstance(board, dict) else None
        raise UserError(f"{label}: schema {found!r}, this vwbench reads {SCHEMA}; write it again with `vwbench leaderboard`")
    return board


def _shown(value: float) -> float:
    """A value as the tables show it (3 decimals): what ranks compare, so that two rows that read
    the same share a rank."""
    return float(fmt(value))


def _ranks(rows: list[dict[str, Any]], key: str = "value") -> None:
    """Competition ranks (1, 2, 2, 4) by ``key`` as shown (3 decimals), highest first;
    ``tied_with_best`` when a row's CI reaches the best row's CI."""
    ordered = sorted(rows, key=lambda r: -r[key])
    for i, row in enumerate(ordered):
        row["rank"] = 1 + next(j for j, other in enumerate(ordered) if _shown(other[key]) == _shown(row[key])) if i else 1
    if ordered and "ci95" in ordered[0]:
        best_low = ordered[0]["ci95"][0]
        for row in ordered:
            row["tied_with_best"] = bool(row["ci95"][1] >= best_low)


def _pair_key(pair: tuple[str, str]) -> tuple[int, int]:
    """Pairs in family order (sd, owlv2, clip), from a result's own source and target (its task
    name is SOURCE->TARGET of those: :class:`vwbench.results.schema.RunResult` checks it)."""
    s, t = pair
    return (FAMILY_ORDER.index(s) if s in FAMILY_ORDER else 9, FAMILY_ORDER.index(t) if t in FAMILY_ORDER else 9)


def _result_record(e: Entry) -> dict[str, Any]:
    r, p = e.result, e.result.provenance
    return {
        "file": e.file, "sha256": e.sha256, "task": r.task, "dataset": r.dataset, "transfer": r.transfer, "metric": r.metric,
        "value": r.value, "ci95": list(r.ci95), "per_concept": r.per_concept, "n_trials": r.n_trials, "steps": r.steps, "seed": r.seed,
        "secondary_metrics": published_metrics(r), "transfer_params": r.transfer_params,
        "provenance": {
            "vwbench_version": p.vwbench_version, "git_commit": p.git_commit, "task_version": p.task_version, "created": p.created,
            "device": p.device, "dtype": p.dtype, "machine": p.machine, "dataset_manifest_hash": p.dataset_manifest_hash,
            "checkpoints": [{"role": c.role, "family": c.family, "name": c.name, "revision": c.revision, "sha256": c.sha256} for c in p.checkpoints],
            "versions": p.versions,
        },
        "samples": e.samples,
        "study": None if r.study is None else {"family": r.study.family, "key": r.study.key, "encoders": r.study.encoders},
    }


def build(collected: Collected, name: str, check: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``leaderboard.json`` payload for ``collected`` results."""
    ids = {e.file: f"r{i + 1}" for i, e in enumerate(collected.entries)}
    by_dataset: dict[str, list[Entry]] = {}
    for e in collected.entries:
        if e.result.study is None:
            by_dataset.setdefault(e.result.dataset, []).append(e)
    datasets = {ds: _dataset(entries, ids) for ds, entries in sorted(by_dataset.items())}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "generated": utc_now(),
        "vwbench_version": vwbench.__version__,
        "datasets": datasets,
        "studies": _studies([e for e in collected.entries if e.result.study is not None], ids),
        "results": {ids[e.file]: _result_record(e) for e in collected.entries},
        "skipped": [{"file": f, "reason": why} for f, why in collected.skipped],
        "superseded": collected.superseded,  # names only: what boards written before superseded_by hold
        "superseded_by": [s.record() for s in collected.superseded_by],
        "check": check,
    }


def _row(e: Entry, ids: dict[str, str], method: str) -> dict[str, Any]:
    return {"method": method, "value": e.result.value, "ci95": list(e.result.ci95), "result": ids[e.file]}


def _dataset(entries: list[Entry], ids: dict[str, str]) -> dict[str, Any]:
    in_domain = {e.result.target: e for e in entries if e.result.source == e.result.target and e.result.transfer == "identity"}
    pairs: dict[str, Any] = {}
    models = {e.result.task: (e.result.source, e.result.target) for e in entries}
    for task in sorted(models, key=lambda t: _pair_key(models[t])):
        mine = [e for e in entries if e.result.task == task]
        source, target = models[task]
        rows = [_row(e, ids, e.result.transfer) for e in mine]
        _ranks(rows)
        ceiling = in_domain.get(target)
        pairs[task] = {
            "source": source, "target": target, "metric": mine[0].result.metric,
            "rows": sorted(rows, key=lambda r: (r["rank"], r["method"])),
            "in_domain": _row(ceiling, ids, IN_DOMAIN) if ceiling is not None and source != target else None,
        }
    cross = [t for t, p in pairs.items() if p["source"] != p["target"]]
    methods = sorted({r["method"] for t in cross for r in pairs[t]["rows"]})
    summary = []
    for method in methods:
        values = {t: r["value"] for t in cross for r in pairs[t]["rows"] if r["method"] == method}
        summary.append({"method": method, "mean": sum(values.values()) / len(values), "n_pairs": len(values), "values": values})
    # a mean over fewer pairs is not comparable: only methods with every cross pair are ranked
    complete = [r for r in summary if r["n_pairs"] == len(cross)]
    _ranks(complete, key="mean")
    for row in summary:
        row.setdefault("rank", None)
    summary.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["method"]))
    ceiling_values = {t: pairs[t]["in_domain"]["value"] for t in cross if pairs[t]["in_domain"]}
    if ceiling_values:  # the ceiling the methods are measured against, as in the pair tables: last, never ranked
        summary.append({"method": IN_DOMAIN, "mean": sum(ceiling_values.values()) / len(ceiling_values), "n_pairs": len(ceiling_values),
                        "values": ceiling_values, "rank": None, "ceiling": True})
    return {
        "metrics": sorted({p["metric"] for p in pairs.values()}),
        "cross_pairs": cross,
        "summary": summary,
        "pairs": pairs,
        "grids": _grids(entries, ids, in_domain),
    }


def _grids(entries: list[Entry], ids: dict[str, str], in_domain: dict[str, Entry]) -> list[dict[str, Any]]:
    """Source x target grids, one per method: cell (s, t) is the method's s->t result; the
    diagonal falls back to the in-domain word where the method has no x->x result."""
    families = [f for f in FAMILY_ORDER if any(f in (e.result.source, e.result.target) for e in entries)]
    families += sorted({f for e in entries for f in (e.result.source, e.result.target)} - set(families))
    methods = sorted({e.result.transfer for e in entries if e.result.source != e.result.target})
    methods.sort(key=lambda m: (m not in PREFERRED_GRID_METHODS, m))
    grids = []
    for method in methods:
        cells: dict[str, dict[str, Any]] = {}
        for e in entries:
            r = e.result
            if r.transfer == method:
                cells.setdefault(r.source, {})[r.target] = {"value": r.value, "result": ids[e.file], "in_domain": r.source == r.target}
        for family, e in in_domain.items():
            cells.setdefault(family, {}).setdefault(family, {"value": e.result.value, "result": ids[e.file], "in_domain": True})
        grids.append({"method": method, "models": families, "cells": cells})
    return grids


def _studies(entries: list[Entry], ids: dict[str, str]) -> dict[str, Any]:
    """Per study family and dataset: ranked rows (headline value and CI, the family's columns)
    and each result's tables."""
    from vwbench.studies import PAIRED_FAMILIES, STUDY_COLUMNS, STUDY_FAMILIES, STUDY_INTERVALS

    families = sorted({e.result.study.family for e in entries}, key=lambda f: (list(STUDY_FAMILIES).index(f) if f in STUDY_FAMILIES else 99, f))
    out: dict[str, Any] = {}
    for family in families:
        datasets: dict[str, Any] = {}
        mine = [e for e in entries if e.result.study.family == family]
        for ds in sorted({e.result.dataset for e in mine}):
            here = [e for e in mine if e.result.dataset == ds]
            rows = [
                {"task": e.result.task, "method": e.result.transfer, "metric": e.result.metric, "value": e.result.value,
                 "ci95": list(e.result.ci95), "metrics": published_metrics(e.result), "result": ids[e.file]}
                for e in here
            ]
            # a paired family (align) ranks the methods of each task; the others rank their encoders
            group = (lambda r: r["task"]) if family in PAIRED_FAMILIES else (lambda r: "")
            for key in {group(r) for r in rows}:
                _ranks([r for r in rows if group(r) == key])
            rows.sort(key=lambda r: (group(r), r["rank"], r["task"], r["method"]))
            present = {k for r in rows for k in r["metrics"]}
            by_id = {ids[e.file]: e for e in here}
            datasets[ds] = {
                "metrics": sorted({r["metric"] for r in rows}),
                "columns": [c for c in STUDY_COLUMNS.get(family, ()) if c in present],
                "rows": rows,
                "tables": {r["result"]: _study_tables(by_id[r["result"]].result.study) for r in rows},
            }
        out[family] = {"interval": STUDY_INTERVALS.get(family, ""), "datasets": datasets}
    return out


def _study_tables(study) -> dict[str, dict[str, Any]]:
    """A study result's tables as ``{name: {"columns": [...], "rows": [...]}}`` (the stored column
    order, else first-seen)."""
    out = {}
    for name, rows in study.tables.items():
        columns = list(study.table_columns.get(name) or [])
        for row in rows:
            columns += [k for k in row if k not in columns]
        out[name] = {"columns": columns, "rows": rows}
    return out


def fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
