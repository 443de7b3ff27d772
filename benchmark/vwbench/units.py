"""Work units of a sweep: one trained word each, runnable anywhere and stored on its own.

A task's words are ``concepts x trials`` (at one ``delta`` for the fracturing runs). Each word
draws its batches from its own random stream, so it trains the same alone or in any batch (up to
float rounding), and a sweep may train its words in whatever chunks suit its workers:
:func:`run_word_units` trains the given units of one task together and writes each one's file
atomically; ``run_task`` later assembles the task's word set from them instead of training.

>>> units = plan_word_units(task, options)        # every word the task needs
>>> todo = [u for u in units if not unit_done(task, options, u)]
>>> run_word_units(task, todo, options)           # trains them in one batch, one file each
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vwbench.errors import UserError
from vwbench.progress import NullReporter, Reporter
from vwbench.registry.schema import TaskSpec
from vwbench.results import journal
from vwbench.results.words_store import WordSet, load_wordset, save_wordset


@dataclass(frozen=True)
class WordUnit:
    """One trained word: the task whose source model trains it, and which word it is."""

    task: str  # e.g. "sd->owlv2"; all tasks of one (source, dataset) share the word
    dataset: str
    source: str  # source family
    concept: str
    trial: int
    delta: float | None = None

    @property
    def word_key(self) -> str:
        return f"{self.concept}/{self.trial}"

    def label(self) -> str:
        delta = f" delta={self.delta:g}" if self.delta is not None else ""
        return f"{self.source} on {self.dataset}: {self.concept} trial {self.trial}{delta}"


@dataclass
class _Context:
    """What a process needs to place and train a task's words (loaded once per process)."""

    split: Any
    hp: Any
    source: Any
    plan: Any
    set_path: Path
    feature_cache: Any = None  # its one full-disk warning goes to the reporter of the current call


_CONTEXTS: dict[tuple, _Context] = {}


def _context(task: TaskSpec, options: Any) -> _Context:
    from vwbench.pipeline_steps import load_split, plan_words, words_path
    from vwbench.registry import dataset_loader
    from vwbench.runner import _fracture, _ModelCache, check_words_fit_models, compute_setup, resolve_hyperparameters

    marker = (task.key, task.model_dump_json(), options.steps, options.trials, options.seed, options.delta,
              tuple(options.anchors or ()), str(options.out_dir), str(options.weights_dir), str(options.data_root), options.device, options.feature_cache)
    if marker not in _CONTEXTS:
        if options.embeddings is not None:
            raise UserError("a submitted embeddings file has no words to train; run it with vwbench run --embeddings")
        hp = resolve_hyperparameters(task, options)
        device, dtype = compute_setup(options.device, options.threads)
        split = load_split(task, hp, dataset_loader(task.dataset.loader), options.data_root)
        models = _ModelCache(device, dtype, options.weights_dir, options.feature_cache_dir)
        source, ckpt = models.get(task.source, "source")
        check_words_fit_models(task, models, hp.n_vectors)  # loads the target for the check only
        plan = plan_words(source, ckpt, split, hp, _fracture(options, split))
        _CONTEXTS[marker] = _Context(split, hp, source, plan, words_path(options.out_dir, split, source.family, plan.key),
                                     models.feature_cache)
    return _CONTEXTS[marker]


def plan_word_units(task: TaskSpec, options: Any) -> list[WordUnit]:
    """Every word the task's run needs, without loading anything (concepts x trials)."""
    from vwbench.runner import resolve_hyperparameters

    hp = resolve_hyperparameters(task, options)
    return [
        WordUnit(task.name, task.dataset.name, task.source.family, concept, trial, options.delta)
        for concept in task.dataset.concept_names
        for trial in range(hp.trials)
    ]


def unit_path(out_dir: Path, task: TaskSpec, options: Any, unit: WordUnit) -> Path:
    """Where ``unit``'s word file is stored (``out_dir`` must be ``options.out_dir``)."""
    from vwbench.pipeline_steps import unit_word_path

    if Path(out_dir) != Path(options.out_dir):
        raise ValueError(f"unit_path: out_dir {out_dir} differs from the options' {options.out_dir}")
    return unit_word_path(_context(task, options).set_path, unit.word_key)


def unit_done(task: TaskSpec, options: Any, unit: WordUnit) -> bool:
    """Whether ``unit``'s word is stored (intact, for this exact plan) or its whole word set is."""
    from vwbench.pipeline_steps import load_unit_word, unit_word_path

    ctx = _context(task, options)
    if _whole_set_stored(ctx):
        return True
    return load_unit_word(unit_word_path(ctx.set_path, unit.word_key), ctx.plan.key, unit.word_key) is not None


def _whole_set_stored(ctx: _Context) -> bool:
    whole = load_wordset(ctx.set_path)
    return whole is not None and whole.metadata.get("key") == ctx.plan.key


def set_stored(set_path: Path) -> bool:
    """Whether a whole word set is stored, intact, at ``set_path`` (``pipeline_steps.words_path``
    names the file by its key), for callers that know its path but not its plan."""
    whole = load_wordset(set_path)
    return whole is not None and str(whole.metadata.get("key", "")).startswith(Path(set_path).stem)


def _all_words_stored(ctx: _Context) -> bool:
    """Whether every word of the plan is stored, as its whole set or as units."""
    from vwbench.pipeline_steps import load_unit_word, unit_word_path

    if _whole_set_stored(ctx):
        return True
    return all(load_unit_word(unit_word_path(ctx.set_path, k), ctx.plan.key, k) is not None for k in ctx.plan.word_keys)


def run_word_units(task: TaskSpec, units: list[WordUnit], options: Any, reporter: Reporter | None = None) -> list[Path]:
    """Train the units of ``task`` that are not stored yet, together in one batch, and write each
    one's word file atomically; returns every unit's path (stored ones are skipped)."""
    from vwbench.pipeline_steps import unit_word_path
    from vwbench.results.locks import exclusive
    from vwbench.results.words_store import cache_key

    reporter = reporter or NullReporter()
    ctx = _context(task, options)
    if ctx.feature_cache is not None:
        ctx.feature_cache.log = reporter.log
    index = {k: i for i, k in enumerate(ctx.plan.word_keys)}
    for unit in units:
        if unit.word_key not in index or unit.source != task.source.family or unit.dataset != task.dataset.name:
            raise UserError(f"work unit {unit.label()} does not belong to task {task.name} on {task.dataset.name}")
    paths = [unit_word_path(ctx.set_path, u.word_key) for u in units]
    todo = [i for i, u in enumerate(units) if not unit_done(task, options, u)]
    if not todo:
        remove_finished_chunk_states(options.out_dir, ctx.set_path, lambda: _all_words_stored(ctx))
        return paths
    chunk = cache_key({"plan": ctx.plan.key, "words": sorted(units[i].word_key for i in todo)})[:16]
    state_path = ctx.set_path.with_suffix(".units") / f"chunk-{chunk}.trainstate"
    # another process training this very chunk (a second sweep) waits, then finds its words stored,
    # instead of training them again and deleting this one's checkpoint temp files
    with exclusive(options.out_dir, f"chunk-{chunk}", what=f"{len(todo)} word(s) of {ctx.source.family} on {ctx.split.name}", log=reporter.log):
        todo = [i for i in todo if not unit_done(task, options, units[i])]  # stored while this one waited
        if todo:
            _train_and_store(ctx, [index[units[i].word_key] for i in todo], [paths[i] for i in todo], state_path, reporter)
    remove_finished_chunk_states(options.out_dir, ctx.set_path, lambda: _all_words_stored(ctx))
    return paths


def remove_finished_chunk_states(out_dir: Path, set_path: Path, all_stored: Callable[[], bool]) -> list[Path]:
    """Delete the chunk training checkpoints of the word set at ``set_path`` once ``all_stored()``
    says each of its words is stored; returns the files deleted.

    A chunk deletes its own checkpoint once its words are stored, but the checkpoint of a chunk
    that never finished stays behind when a later sweep cuts the same words into other chunks
    (other chunk names), or when other processes store its words. A checkpoint whose chunk lock
    another process holds (it is training that chunk now) is left alone."""
    states = sorted(Path(set_path).with_suffix(".units").glob("chunk-*.trainstate"))
    if not states or not all_stored():
        return []
    return [state for state in states if _remove_unheld_state(out_dir, state)]


def _remove_unheld_state(out_dir: Path, state_path: Path) -> bool:
    """Delete one chunk's checkpoint (and its dead writers' temp files) under the chunk's lock,
    taken without waiting; ``False`` when another process holds it or the file stays."""
    from vwbench.results.atomic import remove_stale_temps
    from vwbench.results.locks import held_if_free

    with held_if_free(out_dir, state_path.stem) as held:  # the lock run_word_units holds while it trains the chunk
        if not held:
            return False
        try:
            state_path.unlink(missing_ok=True)
            remove_stale_temps(state_path)
        except OSError:
            return False  # a read-only folder: the stale checkpoint is harmless
    journal.forget(state_path)
    return True


def _train_and_store(ctx: _Context, which: list[int], paths: list[Path], state_path: Path, reporter: Reporter) -> None:
    """Train the plan's words ``which`` together and store each in its own file (``paths``)."""
    from vwbench.pipeline_steps import stored_curve, train_plan_words

    vectors, losses, facts = train_plan_words(ctx.source, ctx.split, ctx.hp, ctx.plan, which, reporter, state_path)
    plan = ctx.plan
    for row, (w, path) in enumerate(zip(which, paths)):
        word = WordSet(
            vectors=vectors[row : row + 1].clone(),
            concepts=[plan.concepts[w]],
            trials=[plan.trials[w]],
            init_words=[plan.init_words[w]],
            metadata={"key": plan.key, "word_key": plan.word_keys[w], "loss_curve": stored_curve(losses[:, row : row + 1], ctx.hp.steps), "batch_words": len(which),
                      **({"fracture_anchors": _anchor_facts(plan, w, facts)} if facts else {})},
        )
        save_wordset(path, word)
        journal.record(path, "trained word (sweep unit)")
    try:
        state_path.unlink(missing_ok=True)
    except OSError:
        pass
    journal.forget(state_path)


def _anchor_facts(plan: Any, word: int, facts: dict[str, dict]) -> dict[str, dict]:
    """The fracturing facts of word ``word``'s anchor (facts are keyed by anchor word)."""
    anchor = plan.key_parts["fracture"]["anchors"][plan.concepts[word]]
    return {anchor: facts[anchor]} if anchor in facts else {}


def release_contexts() -> None:
    """Drop the models and splits loaded to place and train units (a sweep's driver calls it
    after planning, so it does not hold every source model for the rest of the sweep)."""
    _CONTEXTS.clear()
