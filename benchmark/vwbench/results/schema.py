"""The result of one run unit, as stored on disk (one JSON file each).

``schema_version`` is bumped whenever a field changes meaning; readers refuse versions they do not
know instead of guessing.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vwbench.errors import UserError

SCHEMA_VERSION = 1


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
    task: str  # e.g. "sd->owlv2"
    source: str
    target: str
    dataset: str
    metric: str
    value: float
    ci95: tuple[float, float]
    per_concept: dict[str, float]
    per_word: list[dict[str, float | str | int]]  # concept, trial, init_word, value (+ other metrics)
    metrics: dict[str, float] = Field(default_factory=dict)  # secondary metrics' means (map50, ...)
    transfer: str
    transfer_params: dict = Field(default_factory=dict)
    n_trials: int
    steps: int
    seed: int
    provenance: Provenance
    fracture: dict | None = None  # delta-ball runs: delta, anchors, anchor_facts (unit distance, nearest word, radius)
    study: StudyRecord | None = None  # study tasks (probe:clip, align:owlv2->clip, sae:clip); None for word tasks


def read_result(path: Path) -> RunResult:
    """Read and validate a result file; a torn or foreign file is a one-line :class:`UserError`."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise UserError(f"{path}: not a readable result file ({type(exc).__name__}: {str(exc)[:200]})") from exc
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: result schema version {version!r}, this vwbench reads version {SCHEMA_VERSION}")
    try:
        return RunResult.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: invalid result file: {where}: {first['msg']}") from exc
