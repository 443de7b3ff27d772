"""``vwbench run --task FAMILY:...``: a study task from its spec to a stored result.

study spec -> dataset split -> frozen encoders (checkpoints resolved and hashed) -> the family's
computation (:mod:`vwbench.studies.families`) -> :class:`~vwbench.results.schema.RunResult` with a
``study`` record and provenance, written atomically under ``OUT/results/<dataset>/studies/``.

A result is stored under a cache key hashing everything it depends on (the family, task version
and code version, the dataset manifest, the data and effective settings, each encoder's
checkpoint files and pooling, the transfer and a submission's sha256) and is reused when the
same run is asked for again; it is computed under the same file lock as a word run's units, so
concurrent processes compute it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vwbench
from vwbench.errors import UserError
from vwbench.progress import NullReporter, Reporter
from vwbench.registry import dataset_loader
from vwbench.registry.studies import StudySpec
from vwbench.results import journal
from vwbench.results.atomic import atomic_write_json, remove_stale_temps
from vwbench.results.locks import compute_once
from vwbench.results.provenance import StageTimer, compute_environment, git_commit, library_versions, utc_now
from vwbench.results.schema import RunResult, StoredRun, read_result
from vwbench.studies import PAIRED_FAMILIES, study_family

STUDY_CODE_VERSION = 2  # 2: sae stability over live concepts, with the untrained-start baseline
"""Part of every study result's key: bump it when a family's computation changes meaning."""


@dataclass
class StudyOptions:
    """Overrides of a study task's settings (``None`` keeps the task's)."""

    transfer: str | None = None  # paired families: a built-in method name or a submission path
    seed: int | None = None
    device: str = "auto"
    out_dir: Path = Path("runs")
    weights_dir: Path | None = None
    data_root: Path | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        from vwbench.runner import expand_user_paths

        expand_user_paths(self, ("out_dir", "weights_dir", "data_root"))


def load_study_split(spec: StudySpec, data_root: Path | None):
    """The dataset split a study task reads: ``data.train_per_concept`` training images and
    ``data.heldout_per_concept`` held-out images per concept, validated like a word run's."""
    dataset = spec.dataset.model_copy(update={"heldout_per_concept": spec.data.heldout_per_concept})
    loader = dataset_loader(dataset.loader)
    split = loader(dataset, images_per_concept=spec.data.train_per_concept, data_root=data_root)
    split.validate(spec.data.train_per_concept)
    return split


def result_path(out_dir: Path, spec: StudySpec, method: str, key: str) -> Path:
    family, _, rest = spec.name.partition(":")
    stem = rest.replace("->", "-to-")
    return Path(out_dir) / "results" / spec.dataset.name / "studies" / family / f"{stem}-{method}-{key[:12]}.json"


def check_study_transfer(spec: StudySpec, transfer: str | None):
    """The study's transfer method (``--transfer``, else the task's, else lstsq; None for a study
    that maps nothing), or a one-line :class:`UserError` (``vwbench run`` calls this before it
    makes ``--out``)."""
    if spec.family not in PAIRED_FAMILIES:
        if transfer is not None:
            raise UserError(f"--transfer applies to word tasks and to {', '.join(PAIRED_FAMILIES)} studies, not to {spec.name}")
        return None
    from vwbench.submissions.run_support import prepare_transfer
    from vwbench.submissions.transfers import looks_like_path
    from vwbench.submissions.validate import detect_kind
    from vwbench.transfer.anchor import AnchorTransfer

    arg = transfer or spec.transfer or "lstsq"
    kind = detect_kind(Path(arg)) if looks_like_path(arg) and Path(arg).is_file() else None
    if kind == "linear-map":  # its kind first, before its direction
        raise UserError(f"--transfer {arg}: a linear-map submission maps one vocabulary to another; {spec.family} fits its map on image features (give a method name or a transfer-method folder)")
    if kind == "embeddings":  # not "pass it with --embeddings": a study takes no words
        raise UserError(f"--transfer {arg}: an embeddings file holds trained words, which {spec.family} does not take; give a method name or a transfer-method folder")
    source, target = spec.encoder("source"), spec.encoder("target")
    prepared = prepare_transfer(arg, source.model.family, target.model.family)
    if isinstance(prepared.method, AnchorTransfer):  # a submitted folder may use init words where it has them
        raise UserError(f"--transfer {prepared.label}: it maps each word to its concept's init word, and {spec.family} maps image features, which have none; choose lstsq, ridge, procrustes, knn, random or a transfer-method folder")
    return prepared


def _settings_values(spec: StudySpec, seed: int | None) -> dict[str, Any]:
    """The task's settings with ``--seed`` applied, bounded like the study file's seed."""
    from vwbench.registry.schema import with_overrides
    from vwbench.registry.studies import FAMILY_SETTINGS

    if seed is None:
        return dict(spec.settings)
    typed = FAMILY_SETTINGS[spec.family].model_validate(spec.settings)
    return with_overrides(typed, {"seed": seed}).model_dump(exclude_none=True)


def study_settings(spec: StudySpec, seed: int | None):
    """The study family's settings of ``spec`` with ``--seed`` applied, checked (a bad value is a
    one-line :class:`UserError`; ``vwbench run`` calls this before it makes ``--out``)."""
    return study_family(spec.family).settings(_settings_values(spec, seed))


def _finite(value: Any) -> Any:
    """Tables in JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _columns(rows: list[dict]) -> list[str]:
    """A table's columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def run_study(spec: StudySpec, options: StudyOptions, reporter: Reporter | None = None) -> StoredRun:
    """Run one study task and store its result (or reuse the stored one), under
    :func:`vwbench.runner.torch_run_state`."""
    from vwbench.runner import torch_run_state

    with torch_run_state():
        return _run_study(spec, options, reporter)


def _run_study(spec: StudySpec, options: StudyOptions, reporter: Reporter | None) -> StoredRun:
    from vwbench.results.words_store import cache_key, dtype_key_part, release_key_part
    from vwbench.runner import compute_setup
    from vwbench.studies.encoders import EncoderCache
    from vwbench.studies.families import StudyContext

    reporter = reporter or NullReporter()
    if not spec.pinned:
        reporter.log(f"warning: {spec.key} uses a checkpoint that is not pinned to a revision; results may not be reproducible")
    device, dtype = compute_setup(options.device, options.threads)
    family = study_family(spec.family)
    settings = study_settings(spec, options.seed)
    prepared = check_study_transfer(spec, options.transfer)
    method_label = prepared.label if prepared is not None else spec.family
    timer = StageTimer()
    cache = EncoderCache(device, dtype, options.weights_dir)

    with timer("resolve"):  # first: a missing checkpoint is reported before any data is read
        resolved = {e.role: cache.resolve(e.model) for e in spec.encoders}
    with timer("data"), reporter.stage(f"data {spec.dataset.name}") as stage:
        split = load_study_split(spec, options.data_root)
        stage.advance(1)
    key = cache_key({
        "study": spec.family, "task": spec.name, "task_version": spec.version, "code_version": STUDY_CODE_VERSION,
        "dataset": split.manifest.hash, "data": spec.data.model_dump(mode="json"), "settings": settings,
        "encoders": [
            {"role": e.role, "name": e.name, "pooling": e.pooling, "family": e.model.family, "checkpoint": resolved[e.role].name,
             "revision": resolved[e.role].revision, "files": resolved[e.role].files}
            for e in spec.encoders
        ],
        "transfer": prepared.key if prepared is not None else None,
        **release_key_part(),
        **dtype_key_part(dtype),
    })
    path = result_path(options.out_dir, spec, method_label, key)
    seed = int(settings.get("seed", 0))

    def load() -> RunResult | None:
        if not path.is_file():
            return None
        try:
            stored = read_result(path)
        except UserError as exc:
            reporter.log(f"ignoring a damaged result ({exc}); computing it again")
            return None
        if stored.study is None or stored.study.key != key or (stored.task, stored.dataset, stored.seed) != (spec.name, spec.dataset.name, seed):
            reporter.log(f"ignoring {path}: it holds another run's result; computing it again")
            return None
        return stored

    def compute() -> RunResult:
        encoders = {}
        with timer("load"), reporter.stage("load encoders") as stage:
            for e in spec.encoders:
                encoders[e.role] = cache.load(e.name, e.model, e.pooling)
            stage.advance(1)
        ctx = StudyContext(spec=spec, split=split, encoders=encoders, settings=settings, reporter=reporter, timer=timer, transfer=prepared)
        outcome = family.run(ctx)
        first = spec.encoders[0] if spec.family not in PAIRED_FAMILIES else spec.encoder("source")
        last = spec.encoders[-1] if spec.family not in PAIRED_FAMILIES else spec.encoder("target")
        result = RunResult(
            task=spec.name, source=first.name, target=last.name, dataset=spec.dataset.name,
            metric=outcome.metric, value=outcome.value, ci95=outcome.ci95, per_concept=outcome.per_concept, per_word=[],
            metrics=outcome.metrics, transfer=outcome.method, transfer_params=_finite(outcome.method_params),
            n_trials=outcome.n_trials, steps=outcome.steps, seed=seed,
            provenance={
                "vwbench_version": vwbench.__version__, "git_commit": git_commit(), "task_version": spec.version,
                "checkpoints": [encoders[e.role].provenance(e.role) for e in spec.encoders],
                "dataset_manifest_hash": split.manifest.hash, "words_file": None, "versions": library_versions(),
                "device": str(device), "dtype": str(dtype).replace("torch.", ""), "machine": compute_environment(str(device)),
                "wall_time_s": timer.stages, "created": utc_now(),
            },
            study={
                "family": spec.family, "key": key, "encoders": {e.role: e.name for e in spec.encoders},
                "pooling": {e.role: e.pooling for e in spec.encoders}, "settings": settings,
                "data": spec.data.model_dump(mode="json"), "tables": _finite(outcome.tables),
                "table_columns": {name: _columns(rows) for name, rows in outcome.tables.items()},
            },
        )
        remove_stale_temps(path)
        atomic_write_json(path, result.model_dump(mode="json"), phase="result")
        journal.record(path, "result")
        return result

    result, reused = compute_once(options.out_dir, f"result-{key[:32]}", what=f"{spec.name} on {spec.dataset.name}", log=reporter.log, load=load, compute=compute)
    if reused:
        from vwbench.results.provenance import made_elsewhere

        reporter.log(f"reusing the stored result {path}{made_elsewhere(result.provenance.git_commit)}")
        journal.record(path, "result", reused=True)
    return StoredRun(result, path, reused)


def rerun_for_check(entry: dict, tasks, out_dir: Path, weights_dir: Path | None, data_root: Path | None, reporter: Reporter | None = None) -> RunResult:
    """Repeat a leaderboard's stored study run (``vwbench check``): the same task, dataset, seed
    and transfer (a submission from its stored path), on the CPU with the entry's ``threads`` (the
    baseline run's; default 1); ``reporter`` hears its stages."""
    from vwbench.registry.studies import StudyRegistry

    spec = StudyRegistry.from_dir(tasks=tasks).get(entry["task"], entry["dataset"])
    transfer = entry.get("transfer_path", entry["transfer"]) if spec.family in PAIRED_FAMILIES else None
    options = StudyOptions(transfer=transfer, seed=entry["seed"], device="cpu", out_dir=out_dir, weights_dir=weights_dir, data_root=data_root, threads=entry.get("threads", 1))
    return run_study(spec, options, reporter or NullReporter()).result
