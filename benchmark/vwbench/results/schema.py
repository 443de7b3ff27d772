"""The result of one run unit, as stored on disk (one JSON file each).

``schema_version`` is bumped whenever a field changes meaning; readers refuse versions they do not
know instead of guessing. Counts are in range (``n_trials`` >= 1, ``steps`` >= 0), numbers are not
``true``/``false``, and a word task's name is SOURCE->TARGET of its model families with the target's
metric (a study task's starts with its family): a foreign file is refused, not misread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from vwbench.errors import UserError
from vwbench.jsonio import read_json

SCHEMA_VERSION = 1


def _not_bool(value: Any) -> Any:
    """JSON ``true`` is not a number (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError("a number is required, not true/false")
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]
Integer = Annotated[int, BeforeValidator(_not_bool)]
Name = Annotated[str, Field(min_length=1)]


class CheckpointProvenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str  # source, target, judge
    family: str
    name: str
    revision: str | None = None
    sha256: dict[str, str] = Field(default_factory=dict)  # file -> sha256


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vwbench_version: str
    git_commit: str | None
    task_version: int
    checkpoints: list[CheckpointProvenance]
    dataset_manifest_hash: str
    words_file: str | None = None
    versions: dict[str, str]  # torch, diffusers, transformers, open_clip, python
    device: str
    dtype: str
    # CPU model and torch threads (and the GPU's name) of the run: part of the arithmetic (see
    # vwbench.results.provenance.compute_environment); empty in results written before it was kept
    machine: dict[str, str | int] = Field(default_factory=dict)
    # the effective word-training hyperparameters and evaluation settings (lr, n_vectors, batch
    # size, guidance scale, generations per word, ...); empty in results written before they were kept
    settings: dict[str, dict] = Field(default_factory=dict)
    wall_time_s: dict[str, float]  # per stage
    created: str  # ISO 8601 UTC


class StudyRecord(BaseModel):
    """What a study task (``vwbench.studies``: probe, align, sae) stores beyond the common fields:
    its family, cache key, encoders by role, effective settings and data, and its tables (lists of
    rows: per transformation, per class, reconstruction vs sparsity, bridging pairs, ...)."""

    model_config = ConfigDict(extra="forbid")
    family: str
    key: str
    encoders: dict[str, str]  # role (encoder, source, target) -> the study's encoder name
    pooling: dict[str, str] = Field(default_factory=dict)  # role -> how images were pooled
    settings: dict = Field(default_factory=dict)
    data: dict = Field(default_factory=dict)
    tables: dict[str, list[dict]] = Field(default_factory=dict)
    table_columns: dict[str, list[str]] = Field(default_factory=dict)  # each table's column order (JSON objects are stored key-sorted)


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    task: Name  # e.g. "sd->owlv2"; a study task: "probe:clip", "align:owlv2->clip"
    source: Name
    target: Name
    dataset: Name
    metric: Name
    value: Number
    ci95: tuple[Number, Number]
    per_concept: dict[str, Number]
    per_word: list[dict[str, float | str | int]]  # concept, trial, init_word, value (+ other metrics)
    metrics: dict[str, Number] = Field(default_factory=dict)  # secondary metrics' means (map50, ...)
    transfer: Name
    transfer_params: dict = Field(default_factory=dict)
    n_trials: Annotated[Integer, Field(ge=1)]
    steps: Annotated[Integer, Field(ge=0)]
    seed: Integer
    provenance: Provenance
    fracture: dict | None = None  # delta-ball runs: delta, anchors, anchor_facts (unit distance, nearest word, radius)
    study: StudyRecord | None = None  # study tasks (probe:clip, align:owlv2->clip, sae:clip); None for word tasks

    @model_validator(mode="after")
    def _task_names_its_models(self) -> RunResult:
        """A word task is SOURCE->TARGET of two model families, scored by the target's metric
        (what :class:`vwbench.registry.schema.TaskSpec` guarantees for every run); a study task
        is FAMILY:..., its study's family."""
        from vwbench.registry.schema import FAMILIES, FAMILY_KIND, KIND_METRICS

        if self.study is not None:
            if not self.task.startswith(f"{self.study.family}:"):
                raise ValueError(f"study task {self.task!r} does not start with its study family {self.study.family!r} and a colon")
            return self
        for role, family in (("source", self.source), ("target", self.target)):
            if family not in FAMILIES:
                raise ValueError(f"{role} {family!r} is not a model family ({', '.join(FAMILIES)}); a study result needs its study record")
        if self.task != f"{self.source}->{self.target}":
            raise ValueError(f"task {self.task!r} is not {self.source}->{self.target} (SOURCE->TARGET of its source and target)")
        metrics = KIND_METRICS[FAMILY_KIND[self.target]]
        if self.metric not in metrics:
            raise ValueError(f"metric {self.metric!r} does not score {self.target} (its metrics: {', '.join(metrics)})")
        return self


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates: undecodable bytes of a file name,
    ``\\udcff`` escapes in JSON) written as backslash escapes, so it can be printed and published."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # a file name's undecodable bytes (surrogateescape): show the bytes, \xff
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: str) -> str:
    """:func:`printable` ``text`` with control characters (a newline in a JSON key) written as
    escapes, so that a message quoting it stays one line."""
    text = printable(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def unpublishable(payload: Any, where: str = "") -> str | None:
    """Where ``payload`` (parsed JSON) holds what strict JSON and UTF-8 text cannot: a NaN or
    infinite number, or a string (or key) with a lone surrogate; ``None`` when it holds neither."""
    stack: list[tuple[str, Any]] = [(where, payload)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{at or 'the file'}: {value} is not a finite number"
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{at or 'the file'}: \"{printable(value)[:80]}\" is not valid UTF-8 text (a lone surrogate)"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                name = f"{at}.{key}" if at else str(key)
                try:
                    str(key).encode("utf-8")
                except UnicodeEncodeError:
                    return f"{printable(name)[:120]}: the key is not valid UTF-8 text (a lone surrogate)"
                stack.append((name, item))
        elif isinstance(value, (list, tuple)):
            stack += [(f"{at}[{i}]", item) for i, item in reversed(list(enumerate(value)))]
    return None


def read_result(path: Path, *, publishable: bool = False) -> RunResult:
    """Read and validate a result file; a torn or foreign file is a one-line :class:`UserError`.

    ``publishable`` also refuses a file holding a NaN or infinite number or text that is not
    valid UTF-8 anywhere (what a leaderboard cannot show or write as strict JSON). It is not the
    default: a study may store a NaN secondary metric, and its runner reuses such a result."""
    try:
        payload = read_json(path)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such result file; give a result JSON (`vwbench run` prints its path; they sit under OUT/results/)") from exc
    except IsADirectoryError as exc:
        raise UserError(f"{path}: a folder, not a result file; give one result JSON from under it") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable result file ({type(exc).__name__}: {printable(str(exc))[:200]})") from exc
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or "schema_version" not in payload:
        raise UserError(f"{path}: not a vwbench result file (it has no schema_version); give a result JSON (`vwbench run` prints its path; they sit under OUT/results/)")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise UserError(f"{path}: result schema version {version!r}, this vwbench reads version {SCHEMA_VERSION}")
    try:
        result = RunResult.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = one_line(".".join(str(p) for p in first["loc"]))
        message = printable(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"{path}: invalid result file: " + (f"{where}: " if where else "") + message) from exc
    if publishable:
        problem = unpublishable(payload)
        if problem:
            raise UserError(f"{path}: invalid result file: {problem}")
    return result


class StoredRun(NamedTuple):
    """What ``run_task`` and ``run_study`` give back: the result, where it is stored, and whether
    it was taken from the store (``reused``) rather than computed by this call."""

    result: RunResult
    path: Path
    reused: bool
