"""``vwbench run``: the data's path from a task to a stored result.

task -> dataset split -> source model: train words (cached) -> transfer.fit/map -> target model:
predict -> metrics -> result JSON with provenance. Each step calls one stage's interface; nothing
here knows which model family it is running.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import vwbench
from vwbench import faults
from vwbench.errors import CheckpointNotFound, CheckpointUnreadable, UserError
from vwbench.results import journal
from vwbench.results.provenance import StageTimer, made_elsewhere
from vwbench.results.words_store import cache_key
from vwbench.results.schema import RunResult, StoredRun
from vwbench.progress import NullReporter, Reporter
from vwbench.registry import adapter_class, dataset_loader, resolve_checkpoint
from vwbench.registry.checkpoints import ResolvedCheckpoint, refetch_command
from vwbench.registry.models import LOADERS_READING_DISK
from vwbench.registry.schema import CheckpointPin, Hyperparameters, ModelSpec, TaskSpec

if TYPE_CHECKING:
    from vwbench.models.base import ConceptModel
    from vwbench.submissions.run_support import PreparedTransfer


@dataclass
class RunOptions:
    """Overrides of a task's defaults (``None`` keeps the task's value)."""

    transfer: str | None = None
    steps: int | None = None
    trials: int | None = None
    seed: int | None = None
    device: str = "auto"
    out_dir: Path = Path("runs")
    weights_dir: Path | None = None
    data_root: Path | None = None
    threads: int | None = None  # CPU intra-op threads; None keeps torch's default
    delta: float | None = None  # fracturing: keep words within delta x the anchor's nearest-word distance
    anchors: list[str] | None = None  # fracturing: --anchors values (concept=word pairs, or one word)
    embeddings: Path | None = None  # an embeddings submission: evaluate its words instead of training
    feature_cache: bool = True  # keep frozen image-side features under out_dir/features

    def __post_init__(self) -> None:
        expand_user_paths(self, ("out_dir", "weights_dir", "data_root", "embeddings"))

    @property
    def feature_cache_dir(self) -> Path | None:
        return Path(self.out_dir) / "features" if self.feature_cache else None


def expand_user_paths(options: Any, fields: tuple[str, ...]) -> None:
    """``~/runs`` given from Python means the home folder, as in a shell: expand each path field
    of ``options``, and its ``transfer`` where that is a ``~`` path (a submission)."""
    for name in fields:
        value = getattr(options, name)
        if value is not None:
            setattr(options, name, Path(value).expanduser())
    transfer = getattr(options, "transfer", None)
    if isinstance(transfer, (str, Path)) and str(transfer).startswith("~"):
        options.transfer = str(Path(transfer).expanduser())


@contextmanager
def torch_run_state() -> Iterator[None]:
    """Torch's global state for a run, put back afterwards for library callers: the models are
    built and run in float32 whatever a notebook's default dtype, gradients are on (a caller's
    ``torch.no_grad()`` or ``torch.inference_mode()`` would stop training), and the thread count
    a run sets is restored."""
    threads, default_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.set_default_dtype(default_dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def resolve_hyperparameters(task: TaskSpec, options: RunOptions) -> Hyperparameters:
    """The task's training settings with the run's overrides applied, bounded as in task files
    (a bad ``--steps``, ``--trials`` or ``--seed`` is a one-line error before anything loads)."""
    from vwbench.registry.schema import with_overrides

    return with_overrides(task.hyperparameters, {"steps": options.steps, "trials": options.trials, "seed": options.seed})


def compute_setup(device_name: str, threads: int | None) -> tuple[torch.device, torch.dtype]:
    """The device and model dtype of a run (fp16 on CUDA), with torch's CPU threads set."""
    device = resolve_device(device_name)
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: give a number of CPU threads of at least 1, or leave it out for torch's default")
    if threads:
        # Small models on a shared CPU run far faster on fewer threads: OpenMP workers spin while
        # other processes hold the cores.
        torch.set_num_threads(threads)
    return device, (torch.float16 if device.type == "cuda" else torch.float32)


def check_device_name(name: str) -> None:
    """A one-line :class:`UserError` for a device name vwbench does not know."""
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda")


def resolve_device(name: str) -> torch.device:
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


class _ModelCache:
    """Loads each checkpoint once per run (the source is the target in x->x)."""

    def __init__(self, device: torch.device, dtype: torch.dtype, weights_dir: Path | None, feature_cache_dir: Path | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.device, self.dtype, self.weights_dir = device, dtype, weights_dir
        self.feature_cache = None
        if feature_cache_dir is not None:
            from vwbench.cache import FeatureCache

            self.feature_cache = FeatureCache(feature_cache_dir, log=log)
        self._models: dict[tuple, object] = {}
        self._resolved: dict[str, object] = {}
        self.provenance: list[dict] = []

    def resolve(self, spec: ModelSpec):
        """Find and hash a checkpoint once per run (hashing a large one takes a while)."""
        pin = spec.checkpoint.model_dump_json()
        if pin not in self._resolved:
            self._resolved[pin] = resolve_checkpoint(spec.checkpoint, self.weights_dir)
        return self._resolved[pin]

    def resolve_all(self, specs: list[ModelSpec]) -> None:
        """Resolve every checkpoint a run needs, so that a run missing several names them all in
        one error instead of one per attempt."""
        missing: list[str] = []
        for spec in specs:
            try:
                self.resolve(spec)
            except CheckpointNotFound as exc:
                if str(exc) not in missing:
                    missing.append(str(exc))
        if len(missing) == 1:
            raise CheckpointNotFound(missing[0])
        if missing:
            raise CheckpointNotFound(f"{len(missing)} checkpoints are missing: " + "; and ".join(missing))

    def _key(self, spec: ModelSpec) -> tuple[str, str]:
        return (spec.family, str(self.resolve(spec).path))

    def holds(self, spec: ModelSpec) -> bool:
        """Whether the checkpoint of ``spec`` is loaded."""
        return self._key(spec) in self._models

    def drop(self, spec: ModelSpec) -> None:
        """Forget the loaded model of ``spec`` (it is freed once nothing else holds it)."""
        self._models.pop(self._key(spec), None)

    def get(self, spec: ModelSpec, role: str):
        resolved = self.resolve(spec)
        self.provenance.append(
            {"role": role, "family": spec.family, "name": resolved.name, "revision": resolved.revision, "sha256": dict(resolved.files)}
        )
        key = self._key(spec)
        if key not in self._models:
            model = load_resolved(spec.family, resolved, self.device, self.dtype, spec.checkpoint)
            if self.feature_cache is not None:
                model.use_feature_cache(self.feature_cache, {"checkpoint": resolved.name, "files": dict(resolved.files)})
            self._models[key] = model
        return self._models[key], resolved


def load_adapter(family: str, path: Path, device: torch.device, dtype: torch.dtype) -> ConceptModel:
    """Load a checkpoint; a damaged one (truncated weights, broken config) is a one-line error."""
    from safetensors import SafetensorError

    cls = adapter_class(family)
    try:
        return cls.from_pretrained(path, device=device, dtype=dtype)
    except UserError:
        raise
    except torch.cuda.OutOfMemoryError as exc:  # a RuntimeError, but nothing is wrong with the files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"checkpoint {path} does not fit in the device's free memory ({reason}); free GPU memory or run with --device cpu") from exc
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, EOFError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointUnreadable(f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {reason}); it is damaged or incomplete: restore or re-fetch it") from exc


def load_resolved(family: str, resolved: ResolvedCheckpoint, device: torch.device, dtype: torch.dtype, pin: CheckpointPin | None = None) -> ConceptModel:
    """:func:`load_adapter` on a resolved checkpoint: a hub checkpoint whose files are missing or
    do not load (a partial or damaged download) is an error that says how to fetch it again where
    it was found (and from ``pin``'s mirror, where it names one)."""
    try:
        return load_adapter(family, resolved.path, device, dtype)
    except (CheckpointNotFound, CheckpointUnreadable) as exc:
        command = refetch_command(resolved, pin)
        if command is None:
            raise
        raise type(exc)(f"{exc}; fetch it again with: {command}") from exc


def task_transfer(task: TaskSpec, options: RunOptions) -> PreparedTransfer:
    """The run's transfer method prepared: ``--transfer``, else the task's default, whose errors
    (a misspelt `transfer:` setting) say where that default comes from."""
    from vwbench.submissions.run_support import prepare_transfer

    if options.transfer is not None:
        if not isinstance(options.transfer, (str, Path)):
            return _method_object(options.transfer)
        return prepare_transfer(str(options.transfer), task.source.family, task.target.family)
    try:
        return prepare_transfer(task.default_transfer, task.source.family, task.target.family)
    except UserError as exc:
        setting = "in_domain" if task.in_domain else "cross_domain"
        raise UserError(f"{exc} (the default of task {task.name} on {task.dataset.name}: `transfer: {setting}:` in its tier, dataset or suite "
                        "file's settings, or defaults.yaml)") from exc


OBJECT_RECORD = "method_object"
"""The key of ``transfer_params`` that marks a result made by a method object from Python (not a
built-in or a submission): leaderboards leave such results out, as no file holds their code."""


def _method_object(method: Any) -> PreparedTransfer:
    """A transfer method object given from Python (``RunOptions(transfer=MyMethod())``): run in
    this process, its result stored under its ``name`` and reused while its ``cache_key`` (a
    string the caller changes whenever the method's code or settings change) stays the same."""
    from vwbench.submissions.run_support import PreparedTransfer
    from vwbench.submissions.schema import check_name
    from vwbench.transfer import TransferMethod

    kind = type(method).__name__
    if not isinstance(method, TransferMethod):
        raise UserError(f"transfer {kind} is not a name, a path or a TransferMethod: give a built-in method's name, a submission's path "
                        "(see submissions/README.md), or an instance of a vwbench.transfer.TransferMethod subclass")
    key = getattr(method, "cache_key", None)
    if not isinstance(key, str) or not key.strip():
        raise UserError(f"transfer {kind} has no cache_key: set `cache_key` to a string that changes whenever its code or settings do "
                        "(its results are stored and reused under its name and that key)")
    try:
        name = check_name(str(getattr(method, "name", "")))
    except ValueError as exc:
        raise UserError(f"transfer {kind}: its name {getattr(method, 'name', None)!r} cannot name results: {exc}") from exc
    kind = f"{type(method).__module__}.{type(method).__qualname__}"
    return PreparedTransfer(method, name, f"{name}@object:{kind}:{key.strip()}", record={OBJECT_RECORD: {"class": kind, "cache_key": key.strip()}})


def _judged(task: TaskSpec) -> bool:
    """Whether the task's judge evaluates it: only a generation target's images are judged."""
    return task.judge is not None and adapter_class(task.target.family).kind == "generation"


def _target_stage_name(task: TaskSpec) -> str:
    """``load owlv2`` for the target stage, naming only what it loads: for x->x the target is the
    source already loaded (a generation target still loads its judge)."""
    loads = [task.target.family] if task.target != task.source else []
    if _judged(task):
        loads.append("judge")
    return f"load {' and '.join(loads)}" if loads else f"check {task.target.family} as the target"


def run_task(task: TaskSpec, options: RunOptions, reporter: Reporter | None = None) -> StoredRun:
    """Run one task end to end and store its result (or reuse the stored one).

    For library callers it runs under :func:`torch_run_state` (float32, gradients on, torch's
    thread count put back), and a run that fails removes the folders of ``out_dir`` it made where
    nothing was written in them. Messages go to ``reporter`` (default: the ``vwbench`` logger)."""
    from vwbench.results.atomic import output_dir

    with torch_run_state(), output_dir(Path(options.out_dir), "--out", probe=False):
        return _run_task(task, options, reporter)


def _run_task(task: TaskSpec, options: RunOptions, reporter: Reporter | None) -> StoredRun:
    from vwbench.pipeline_steps import (
        check_mapped_words, evaluate_words, load_split, load_stored_result, obtain_words, plan_words, repeated_words, result_key, result_path, score_words,
        transfer_words, write_result, write_samples,
    )
    from vwbench.results.locks import compute_once

    reporter = reporter or NullReporter()
    check_embedding_options(options)
    if not task.pinned:
        reporter.log(f"warning: {task.key} uses a checkpoint that is not pinned to a revision; results may not be reproducible")
    device, dtype = compute_setup(options.device, options.threads)
    hp = resolve_hyperparameters(task, options)
    from vwbench.submissions.run_support import concept_init_words, embedding_words

    prepared = task_transfer(task, options)
    transfer_name = prepared.label
    timer = StageTimer()
    models = _ModelCache(device, dtype, options.weights_dir, options.feature_cache_dir, log=reporter.log)

    with timer("data"), reporter.stage(f"data {task.dataset.name}") as stage:
        split = load_split(task, hp, dataset_loader(task.dataset.loader), options.data_root)
        stage.advance(1)
    with timer("load_source"), reporter.stage(f"load {task.source.family}") as stage:
        needed = [task.source, task.target]
        if _judged(task):
            needed.append(task.judge)
        models.resolve_all(needed)
        source, source_ckpt = models.get(task.source, "source")
        stage.advance(1)
    with timer("plan"):
        if options.embeddings is not None:
            submitted = embedding_words(options.embeddings, source, split, task)
            # the seed is part of the key: it draws a generation target's noise, so two seeds are two
            # results; so are the concepts' init words, which `anchor` and methods using init words read
            init_key = cache_key([[c.name, c.init_word] for c in split.concepts])[:16]
            words_key = f"{submitted.metadata['key']}-seed{hp.seed}-init{init_key}"
            # the submitted words are their own entry on a leaderboard (never the method's trained-word
            # result), and the result records the file's trials and no training steps
            about = submitted.metadata["embeddings"]
            embeddings_record = {**about, "path": str(options.embeddings), "transfer": prepared.label}
            transfer_name = f"{about.get('name') or Path(options.embeddings).stem}+{prepared.label}"
            hp = hp.model_copy(update={"trials": max(Counter(submitted.concepts).values()), "steps": 0, "n_vectors": int(submitted.vectors.shape[1])})
        else:
            plan = plan_words(source, source_ckpt, split, hp, _fracture(options, split))
            words_key = plan.key
        evaluators = {"target": dict(models.resolve(task.target).files)}
        if _judged(task):
            evaluators["judge"] = dict(models.resolve(task.judge).files)
        key = result_key(words_key, prepared.key, task, evaluators, split.manifest.hash, dtype)
        path = result_path(options.out_dir, task, transfer_name, key)

    def compute():
        # the target first: words that cannot be evaluated there must fail before training, not after
        with timer("load_target"), reporter.stage(_target_stage_name(task)) as stage:
            target, _ = models.get(task.target, "target")
            judge = models.get(task.judge, "judge")[0] if _judged(task) else None
            if options.embeddings is not None:
                from vwbench.submissions.embeddings import SUBMITTED_WORDS_FIX

                n_vectors, fix = int(submitted.vectors.shape[1]), SUBMITTED_WORDS_FIX
            else:
                n_vectors, fix = hp.n_vectors, "lower n_vectors in the task's hyperparameters"
            for model in dict.fromkeys((source, target)):
                model.check_word_fits(n_vectors, fix)
            prepared.method.check_spaces(source.embedding_dim, target.embedding_dim)
            stage.advance(1)
        with timer("transfer"):  # a submitted method tried on words shaped like the run's, before training
            prepared.method.preflight(source.vocabulary(), target.vocabulary(), [c.init_word for c in split.concepts], n_vectors)
        with timer("train"):
            if options.embeddings is not None:
                words, words_path = submitted, options.embeddings
            else:
                words, words_path = obtain_words(source, source_ckpt, task, split, hp, options.out_dir, reporter, plan)
        with timer("transfer"), reporter.stage(f"transfer {transfer_name}") as stage:
            method, mapped = transfer_words(prepared.method, source, target, words.vectors, concept_init_words(split, words.concepts))
            check_mapped_words(mapped, target, transfer_name)
            stage.advance(1)
        samples: dict = {}
        with timer("evaluate"):
            predictions = evaluate_words(target, judge, mapped, words, split, task, hp, reporter, samples)
        faults.point("evaluated")
        with timer("metrics"):
            scored = score_words(predictions, words, task, target.kind, repeated_words(mapped, words.concepts))
        write_samples(path, samples)  # before the result, which marks the run done: a rerun after a kill writes them all
        result, _ = write_result(
            task=task, hp=hp, split=split, words=words, words_path=words_path, scored=scored, transfer_name=transfer_name,
            method=method, extra_params=prepared.record, checkpoints=models.provenance, device=device, dtype=dtype, timer=timer.stages,
            version=vwbench.__version__, path=path, embeddings=embeddings_record if options.embeddings is not None else None,
        )
        return result

    said: set[str] = set()

    def log_once(message: str) -> None:  # compute_once looks for the stored result twice (before and under its lock)
        if message not in said:
            said.add(message)
            reporter.log(message)

    result, reused = compute_once(
        options.out_dir, f"result-{key[:32]}", what=f"{task.name} on {task.dataset.name}", log=reporter.log,
        load=lambda: load_stored_result(path, task, transfer_name, hp, log_once), compute=compute,
    )
    if reused:
        reporter.log(f"reusing the stored result {path}{made_elsewhere(result.provenance.git_commit)}")
        current = {"submission": prepared.method.describe().get("submission", {}).get("path")}
        if options.embeddings is not None:
            current["embeddings"] = str(options.embeddings)
        result = refresh_submitted_paths(result, path, current, reporter.log)
        journal.record(path, "result", reused=True)
    faults.point("result-done")
    return StoredRun(result, path, reused)


def refresh_submitted_paths(result: RunResult, path: Path, current: dict[str, str | None], log: Callable[[str], None]) -> RunResult:
    """A reused result of submitted files (a transfer submission, embeddings) records the paths
    this run gave them: the files are the same (their sha256 is in the result's key), but
    `vwbench check` re-runs them from the recorded path, which the user may have moved them from.
    The result file is rewritten atomically where a path changed."""
    from vwbench.results.atomic import atomic_write_json

    params = dict(result.transfer_params or {})
    moved = {
        key: new for key, new in current.items()
        if new is not None and isinstance(params.get(key), dict) and params[key].get("path") not in (None, new)
    }
    if not moved:
        return result
    update: dict[str, Any] = {}
    for key, new in moved.items():
        log(f"the submitted {'words' if key == 'embeddings' else 'transfer'} moved from {params[key]['path']} to {new}: recording the new path in {path}")
        params[key] = {**params[key], "path": new}
        if key == "embeddings":  # the words' file is the run's words file too (analyses read it)
            update["provenance"] = result.provenance.model_copy(update={"words_file": new})
    result = result.model_copy(update={"transfer_params": params, **update})
    try:
        atomic_write_json(path, result.model_dump(mode="json"), phase="result")
    except UserError as exc:  # a read-only copy of finished runs still answers
        log(f"could not record the new path ({str(exc).split('; ')[0]}); the stored result keeps the old one")
    return result


def train_delta_words(task: TaskSpec, runs: list[RunOptions], reporter: Reporter | None = None) -> None:
    """Train the words of several fracturing runs of ``task`` (one ``RunOptions`` per delta, the
    same in all else) in one batch and store each run's word set, which ``run_task`` then reuses.
    Each word keeps its own ball and random stream, so it equals the word of its own run."""
    with torch_run_state():
        _train_delta_words(task, runs, reporter)


def _train_delta_words(task: TaskSpec, runs: list[RunOptions], reporter: Reporter | None) -> None:
    from vwbench.pipeline_steps import load_split, obtain_words_together, plan_words

    reporter = reporter or NullReporter()
    first = runs[0]
    device, dtype = compute_setup(first.device, first.threads)
    hp = resolve_hyperparameters(task, first)
    split = load_split(task, hp, dataset_loader(task.dataset.loader), first.data_root)
    models = _ModelCache(device, dtype, first.weights_dir, first.feature_cache_dir, log=reporter.log)
    source, ckpt = models.get(task.source, "source")
    check_words_fit_models(task, models, hp.n_vectors)
    plans = [plan_words(source, ckpt, split, hp, _fracture(options, split)) for options in runs]
    obtain_words_together(source, split, hp, plans, first.out_dir, reporter)


_FITTING_CHECKPOINTS: set[tuple[str, str, str, int]] = set()  # (family, pin, weights dir, n_vectors) checked here


def check_words_fit_models(task: TaskSpec, models: _ModelCache, n_vectors: int) -> None:
    """Check, before any training, that words of ``n_vectors`` vectors fit the prompts of the
    task's source and target (for jobs that train words the target evaluates only later, in
    another process: a sweep's word units, a delta sweep). A target loaded only for the check is
    dropped from ``models`` again; a checkpoint passes once per process."""
    for spec, role in ((task.source, "source"), (task.target, "target")):
        mark = (spec.family, spec.checkpoint.model_dump_json(), str(models.weights_dir), n_vectors)
        if mark in _FITTING_CHECKPOINTS:
            continue
        held = models.holds(spec)
        models.get(spec, role)[0].check_word_fits(n_vectors)
        _FITTING_CHECKPOINTS.add(mark)
        if role == "target" and not held:
            models.drop(spec)


def check_task_fits(task: TaskSpec, options: RunOptions) -> None:
    """:func:`check_words_fit_models` for ``task`` run with ``options`` (its own model cache)."""
    hp = resolve_hyperparameters(task, options)
    device, dtype = compute_setup(options.device, options.threads)
    check_words_fit_models(task, _ModelCache(device, dtype, options.weights_dir, options.feature_cache_dir), hp.n_vectors)


def preflight_submitted_transfer(task: TaskSpec, options: RunOptions) -> None:
    """For a sweep, whose words train before any task prepares its transfer: a submitted transfer
    (a path) fitted and tried on both models' vocabularies (:meth:`TransferMethod.preflight`), so
    one that cannot work is an error before the word jobs. Loads the two models; nothing for a
    built-in method."""
    from vwbench.submissions.run_support import prepare_transfer
    from vwbench.submissions.transfers import looks_like_path

    arg = options.transfer or task.default_transfer
    if task.in_domain or not looks_like_path(arg):
        return
    prepared = prepare_transfer(arg, task.source.family, task.target.family)
    device, dtype = compute_setup(options.device, options.threads)
    models = _ModelCache(device, dtype, options.weights_dir)
    source, target = models.get(task.source, "source")[0], models.get(task.target, "target")[0]
    n_vectors = resolve_hyperparameters(task, options).n_vectors
    prepared.method.preflight(source.vocabulary(), target.vocabulary(), [c.init_word for c in task.dataset.concepts], n_vectors)


def check_embedding_options(options: RunOptions) -> None:
    """Options of word training given with submitted ``--embeddings`` (which are not trained) are
    a one-line error, not silently dropped."""
    if options.embeddings is not None:
        given = {"--steps": options.steps is not None, "--trials": options.trials is not None, "--delta": options.delta is not None, "--anchors": bool(options.anchors)}
        training_only = [name for name, present in given.items() if present]
        if training_only:
            raise UserError(
                f"{'/'.join(training_only)} appl{'ies' if len(training_only) == 1 else 'y'} to word training; submitted --embeddings are not trained "
                f"(their trials are the file's words): drop {'it' if len(training_only) == 1 else 'them'}"
            )


def check_run_options(task: TaskSpec, options: RunOptions, *, runs_here: bool = True) -> None:
    """The options of a run that can be checked before any model loads: training options given with
    --embeddings, the --steps/--trials/--seed overrides, --anchors (without --delta, or naming what the dataset does not hold), an
    --embeddings file that is missing, a linear map, or words of another source family, dataset or
    concept set (its vocabulary hash and width need the model: checked once it is loaded), the
    device and a dataset's --data-root folder (only the device's name when the run goes to workers
    elsewhere, ``runs_here=False``: they may have the GPU and the data this machine lacks) and the
    transfer. The CLI calls this before it makes --out, so a bad option is a one-line error that
    leaves no folder."""
    check_embedding_options(options)
    resolve_hyperparameters(task, options)
    check_fracture_options(options)
    if options.delta is not None and options.anchors:  # the dataset's concepts are in its task file: no data needed
        from vwbench.training.fracture import parse_anchors

        concepts = task.dataset.concepts
        parse_anchors(options.anchors, [c.name for c in concepts], {c.name: c.anchor for c in concepts})
    if options.embeddings is not None:
        if not Path(options.embeddings).is_file():
            what = "is a folder" if Path(options.embeddings).is_dir() else "no such file"
            raise UserError(f"--embeddings {options.embeddings}: {what}; give an embeddings submission's .safetensors file (see `vwbench validate`)")
        from vwbench.submissions.embeddings import check_embeddings_for_task  # family, dataset and concepts need no model

        check_embeddings_for_task(Path(options.embeddings), family=task.source.family, dataset=task.dataset.name, concepts=[c.name for c in task.dataset.concepts])
    if runs_here:
        resolve_device(options.device)
        if task.dataset.loader in LOADERS_READING_DISK:  # a missing --data-root before a model loads
            from vwbench.data.real import dataset_folder

            dataset_folder(task.dataset, options.data_root)
    else:
        check_device_name(options.device)
    task_transfer(task, options)


def check_fracture_options(options: RunOptions) -> None:
    """``--anchors`` without ``--delta`` is a one-line error (the CLI calls this before --out is made)."""
    if options.delta is None and options.anchors:
        raise UserError("--anchors applies to the fracturing experiment: give --delta too")


def _fracture(options: RunOptions, split):
    """The delta-ball constraint of ``--delta`` / ``--anchors`` (None without ``--delta``)."""
    check_fracture_options(options)
    if options.delta is None:
        return None
    from vwbench.training.fracture import Fracture, parse_anchors

    defaults = {c.name: c.anchor for c in split.concepts}
    return Fracture(float(options.delta), parse_anchors(options.anchors, split.concept_names, defaults))
