"""Gather result files into leaderboard entries; files that are not valid results are listed as
skipped (with the reason), never fatal: one bad file cannot stop or corrupt a leaderboard.
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
from dataclasses import dataclass, field
from pathlib import Path

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
class Collected:
    entries: list[Entry]
    skipped: list[tuple[str, str]]  # (file, reason)
    superseded: list[str]  # files replaced by a newer or longer run of the same unit


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
        mine = [p for p in files if p.stem == concept or p.stem.startswith(concept + "-")][:MAX_SAMPLES_PER_CONCEPT]
        uris = [u for u in (_thumbnail(p) for p in mine) if u]
        if uris:
            out[concept] = uris
    return out


def published_metrics(result: RunResult) -> dict[str, float | None]:
    """A result's secondary metrics as a leaderboard shows them: a study's metric that is not a
    finite number is undefined on its data and shown as missing (``None``). A word result's
    secondary metrics are means over its words, always defined: it keeps them as they are."""
    if result.study is None:
        return dict(result.metrics)
    return {name: value if math.isfinite(value) else None for name, value in result.metrics.items()}


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


def collect(results_dir: Path) -> Collected:
    """Every ``*.json`` under ``results_dir`` that is a valid result; for one unit (dataset, task,
    transfer) the run with the most steps, then trials, then the newest, is kept."""
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
            skipped.append((rel, printable(str(exc).replace(str(path), "").lstrip(": "))[:300]))
            continue
        if result.fracture is not None:
            skipped.append((rel, f"a delta-constrained run (delta {result.fracture.get('delta')}): see `vwbench delta-sweep` for those"))
            continue
        if not all(math.isfinite(v) for v in (result.value, *result.ci95)):
            skipped.append((rel, f"its value or CI is not a finite number ({result.value}, {list(result.ci95)})"))
            continue
        entry = Entry(result, rel, hashlib.sha256(path.read_bytes()).hexdigest(), _samples(path, list(result.per_concept)))
        units.setdefault((result.dataset, result.task, result.transfer), []).append(entry)
    entries, superseded = [], []
    for group in units.values():
        group.sort(key=_rank_key)
        entries.append(group[-1])
        superseded += [e.file for e in group[:-1]]
    if not entries:
        raise UserError(f"--results {results_dir}: no valid result files found" + (f" ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    return Collected(sorted(entries, key=lambda e: (e.result.dataset, e.result.task, e.result.transfer)), skipped, sorted(superseded))
