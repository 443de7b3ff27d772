"""Reopen a stored run for analysis: its task, its trained words, and the models it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vwbench.errors import CheckpointNotFound, UserError
from vwbench.registry import TaskRegistry, resolve_checkpoint
from vwbench.registry.checkpoints import DEFAULT_MANIFEST, WEIGHT_SUFFIXES
from vwbench.registry.schema import ModelSpec, TaskSpec
from vwbench.results.schema import RunResult, read_result
from vwbench.results.words_store import WordSet, load_wordset


def _pin_key(spec: ModelSpec) -> str:
    pin = spec.checkpoint
    dump = getattr(pin, "model_dump_json", None)
    return dump() if dump is not None else repr(pin)


ROLE_USE = {
    "source": "the words were trained on other weights",
    "target": "the words were transferred to and evaluated on other weights",
    "judge": "the run's images were judged by other weights",
}


def recorded_files(result: RunResult, role: str) -> dict[str, str]:
    """``{file: sha256}`` of the checkpoint a run used as ``role`` (its result's
    ``provenance.checkpoints``); empty where the result records none (older results)."""
    for entry in result.provenance.checkpoints:
        if entry.role == role and entry.sha256:
            return dict(entry.sha256)
    return {}


def checkpoint_mismatch(recorded: dict[str, str], now: dict[str, str]) -> str | None:
    """How the files of a checkpoint now differ from the ones a run recorded, naming one file
    (weights before configs and the manifest), or None when they are the same."""
    differing = sorted(set(recorded) | set(now), key=lambda f: (Path(f).suffix.lower() not in WEIGHT_SUFFIXES, Path(f).name == DEFAULT_MANIFEST, f))
    for file in differing:
        old, new = recorded.get(file), now.get(file)
        if old == new:
            continue
        if new is None:
            return f"file {file}, which the run used, is not there now"
        if old is None:
            return f"file {file} is new (the run had no such file)"
        return f"file {file} has sha256 {new[:12]}..., the run used {old[:12]}..."
    return None


@dataclass
class Models:
    """Loads each checkpoint once, whichever result asks for it, and refuses one whose files differ
    from those a run being analysed recorded for it (:meth:`expect`)."""

    device: torch.device
    weights_dir: Path | None = None
    _cache: dict[str, Any] = field(default_factory=dict)
    _resolved: dict[str, Any] = field(default_factory=dict)
    _expected: dict[str, list[tuple[Path, str, dict[str, str]]]] = field(default_factory=dict)

    def resolve(self, spec: ModelSpec) -> Any:
        """The checkpoint of ``spec`` found and hashed, once per analysis (hashing a large one takes a while)."""
        key = _pin_key(spec)
        if key not in self._resolved:
            self._resolved[key] = resolve_checkpoint(spec.checkpoint, self.weights_dir)
        return self._resolved[key]

    def expect(self, spec: ModelSpec, run: Path, role: str, recorded: dict[str, str]) -> None:
        """From now on, loading ``spec``'s checkpoint checks its files against ``recorded`` (what
        run ``run`` used as ``role``)."""
        if recorded:
            self._expected.setdefault(_pin_key(spec), []).append((Path(run), role, recorded))

    def check(self, spec: ModelSpec) -> Any:
        """The resolved checkpoint of ``spec``, or a one-line :class:`UserError` where its files are
        not the ones a run being analysed used (a rebuilt or replaced checkpoint): that run's words
        belong to the old weights, and analysing them on the new ones gives other numbers."""
        resolved = self.resolve(spec)
        now = dict(getattr(resolved, "files", None) or {})
        for run, role, recorded in self._expected.get(_pin_key(spec), []):
            problem = checkpoint_mismatch(recorded, now)
            if problem is not None:
                raise UserError(f"{run}: checkpoint {resolved.name} ({role}, {spec.family}) differs from the one this run used: {problem}; "
                                f"{ROLE_USE.get(role, 'the run used other weights')}: restore that checkpoint or run the task again")
        return resolved

    def get(self, spec: ModelSpec) -> Any:
        resolved = self.check(spec)
        key = f"{spec.family}:{resolved.path}"
        if key not in self._cache:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            from vwbench.runner import load_resolved  # damaged checkpoints are one-line errors

            self._cache[key] = load_resolved(spec.family, resolved, self.device, dtype, spec.checkpoint)
        return self._cache[key]


@dataclass
class OpenedRun:
    path: Path
    result: RunResult
    task: TaskSpec
    words: WordSet

    @property
    def word_anchors(self) -> list[str]:
        """Each word's anchor word (fractured runs) or init word."""
        if self.result.fracture:
            anchors = self.result.fracture.get("anchors", {})
            return [anchors.get(c, i) for c, i in zip(self.words.concepts, self.words.init_words)]
        return list(self.words.init_words)

    def source(self, models: Models) -> Any:
        return models.get(self.task.source)

    def target(self, models: Models) -> Any:
        return models.get(self.task.target)

    def mapped(self, models: Models) -> torch.Tensor:
        """The words carried into the target's space by the run's own transfer method, built as
        ``vwbench run`` built it: a submission from the path it was run from, and each word's
        concept's init word given (what ``anchor`` maps)."""
        from vwbench.pipeline_steps import transfer_words
        from vwbench.submissions.run_support import prepare_transfer

        params = self.result.transfer_params or {}
        submission = params.get("submission") or {}
        carried_by = (params.get("embeddings") or {}).get("transfer")  # submitted words: the method that carried them
        prepared = prepare_transfer(submission.get("path") or carried_by or self.result.transfer, self.task.source.family, self.task.target.family)
        now = getattr(prepared.method, "sha256", None)
        if submission.get("sha256") and now != submission["sha256"]:
            raise UserError(f"{self.path}: the submission at {submission.get('path')} changed since this run (sha256 {str(now)[:12]}..., "
                            f"the run used {submission['sha256'][:12]}...); restore it or run the task again")
        init = {c.name: c.init_word for c in self.task.dataset.concepts}
        init_words = [init[c] for c in self.words.concepts]
        _, mapped = transfer_words(prepared.method, self.source(models), self.target(models), self.words.vectors, init_words)
        return mapped.to(torch.float32)


def _submitted_words(path: Path, task: TaskSpec, models: Models) -> WordSet | None:
    """The word set of an embeddings submission (what `vwbench run --embeddings` evaluated), or
    None when ``path`` is not one."""
    from vwbench.submissions.embeddings import load_embedding_words
    from vwbench.submissions.safe_tensors import TensorFileError, read_header

    try:
        _, metadata = read_header(path)
    except TensorFileError:
        return None
    if "vocab_hash" not in metadata:
        return None
    vocab = models.get(task.source).vocabulary()
    concepts = task.dataset.concepts
    return load_embedding_words(
        path, family=task.source.family, vocab_hash=vocab.hash(), dim=vocab.dim, dataset=task.dataset.name,
        concepts=[c.name for c in concepts], init_words={c.name: c.init_word for c in concepts},
    )


def expect_checkpoints(path: Path, result: RunResult, task: TaskSpec, models: Models) -> None:
    """Check, before any analysis, that the source and target checkpoints the tasks folder now
    resolves to are the ones the run recorded (``provenance.checkpoints[*].sha256``): stored words
    are only meaningful on the weights they were trained and transferred on. The judge, which only
    the truncation analysis loads, is checked when it is loaded.

    A result that records no files for a role (written before the hashes were kept) is analysed
    without that check: there is nothing to compare with."""
    for role, spec in (("source", task.source), ("target", task.target), ("judge", task.judge)):
        if spec is not None:
            models.expect(spec, path, role, recorded_files(result, role))
    models.check(task.source)  # every analysis reads the words in the source's space
    try:
        models.check(task.target)
    except CheckpointNotFound:
        pass  # an analysis that never loads it (truncation or t-SNE of sd as source) needs none; one that does fails there


def open_run(path: Path, registry: TaskRegistry, models: Models | None = None) -> OpenedRun:
    """A stored result with its words: vwbench's own word file, or (given ``models``, to check it
    against the source's vocabulary) the embeddings submission the run evaluated. Given
    ``models``, the run's checkpoints are checked first (:func:`expect_checkpoints`)."""
    result = read_result(path)
    try:
        task = registry.get(result.task, result.dataset)
    except UserError as exc:  # a run of a tasks folder other than the one this command read
        raise UserError(f"{path}: {exc}; if the run used its own tasks folder, pass it with --tasks-dir (this command read {registry.root})") from exc
    if models is not None:
        expect_checkpoints(Path(path), result, task, models)
    words_file = Path(result.provenance.words_file or "")
    # a relative words file was written relative to the folder the run was started in: the
    # results folder's parents hold it (runs/results/D/T/x.json and runs/words/...) wherever this is run
    candidates = [words_file] + ([] if words_file.is_absolute() else [folder / words_file for folder in Path(path).resolve().parents])
    words = next((w for w in (load_wordset(c) for c in candidates if c.name) if w is not None), None)
    if words is None and models is not None:
        existing = next((c for c in candidates if c.name and c.is_file()), None)
        words = _submitted_words(existing, task, models) if existing is not None else None
        recorded = ((result.transfer_params or {}).get("embeddings") or {}).get("sha256")
        if words is not None and recorded and words.metadata["embeddings"]["sha256"] != recorded:
            raise UserError(f"{path}: the embeddings file {existing} changed since this run (its sha256 differs from the one the run "
                            "recorded); restore it or run the task again")
    if words is None:
        raise UserError(f"{path}: its trained words {words_file} are missing or unreadable; run the task again to retrain them")
    return OpenedRun(Path(path), result, task, words)


def sd_words(run: OpenedRun, models: Models) -> tuple[Any, torch.Tensor]:
    """The Stable Diffusion model a layer analysis runs on, and the run's words in its space:
    transferred words when SD is the target, trained words when it is the source."""
    if run.task.target.family == "sd":
        return run.target(models), run.mapped(models)
    if run.task.source.family == "sd":
        return run.source(models), run.words.vectors.to(torch.float32)
    raise UserError(f"{run.path}: task {run.task.name} involves no generation model; layer analyses need sd as source or target")
