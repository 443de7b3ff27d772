"""The stage glue of ``run_task``: one function per step of the data's path."""

from __future__ import annotations

import contextlib

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vwbench.data.base import DatasetSplit
from vwbench.errors import UserError
from vwbench.models.base import ConceptModel, EvalContext, TrainingData
from vwbench.predictions import Predictions
from vwbench.progress import Reporter
from vwbench import faults
from vwbench.results import journal
from vwbench.results.atomic import atomic_write_bytes, atomic_write_json, remove_stale_temps
from vwbench.results.locks import compute_once, exclusive
from vwbench.results.provenance import compute_environment, git_commit, library_versions, made_elsewhere, utc_now
from vwbench.results.schema import RunResult, read_result
from vwbench.results.words_store import WordSet, cache_key, dtype_key_part, load_wordset, release_key_part, save_wordset
from vwbench.training import TrainConfig, choose_init_words, train_words
from vwbench.training.init_words import concept_exclusions
from vwbench.training.state import TrainState, load_train_state, save_train_state


def load_split(task, hp, loader, data_root: Path | None) -> DatasetSplit:
    split = loader(task.dataset, images_per_concept=hp.images_per_concept, data_root=data_root)
    split.validate(hp.images_per_concept)
    return split


def _init_plan(source: ConceptModel, split: DatasetSplit, trials: int) -> tuple[list[str], list[int], list[str]]:
    """Per word (concepts x trials, concept-major): concept, trial, init word."""
    vocab = source.vocabulary()
    concepts, trial_ids, init_words = [], [], []
    others = concept_exclusions(split.concepts)
    for concept in split.concepts:
        try:
            words = choose_init_words(vocab, concept.init_word, trials, exclude=others)
        except ValueError as exc:
            raise UserError(f"dataset {split.name}, concept {concept.name}: {exc}") from exc
        for t, w in enumerate(words):
            concepts.append(concept.name)
            trial_ids.append(t)
            init_words.append(w)
    return concepts, trial_ids, init_words


TRAINER_VERSION = 2  # 2: each word draws its batches from its own generator (seeded by seed, concept, trial)


@dataclass(frozen=True)
class WordsPlan:
    """What a word set is trained from, and the cache key that hashes all of it."""

    key: str
    key_parts: dict[str, Any]
    concepts: list[str]
    trials: list[int]
    init_words: list[str]

    @property
    def word_keys(self) -> list[str]:
        """Each word's name, ``concept/trial``: what seeds its random stream and names its unit."""
        return [f"{c}/{t}" for c, t in zip(self.concepts, self.trials)]


def plan_words(source: ConceptModel, source_ckpt, split: DatasetSplit, hp, fracture: Any = None) -> WordsPlan:
    concepts, trials, init_words = _init_plan(source, split, hp.trials)
    key_parts = {
        "model": source.family,
        "checkpoint": source_ckpt.name,
        "revision": source_ckpt.revision,
        "files": source_ckpt.files,
        "dataset": split.manifest.hash,
        "concepts": concepts,
        "init_words": init_words,
        "hp": hp.model_dump(mode="json"),
        "trainer": TRAINER_VERSION,
        **release_key_part(),
        **dtype_key_part(source.dtype),
    }
    if fracture is not None:  # the delta-ball experiment (vwbench.training.fracture)
        key_parts["fracture"] = fracture.describe()
    return WordsPlan(cache_key(key_parts), key_parts, concepts, trials, init_words)


def checkpoint_interval(steps: int) -> int:
    """Training state is saved every ``ceil(steps / 10)`` steps (every step for runs under ten
    steps); the finished run is stored as its words instead."""
    return max(1, -(-steps // 10))


def words_path(out_dir: Path, split: DatasetSplit, family: str, key: str) -> Path:
    """Where the word set of cache key ``key`` is stored."""
    return Path(out_dir) / "words" / split.name / family / f"{key[:16]}.safetensors"


def unit_word_path(set_path: Path, word_key: str) -> Path:
    """Where one word of a set is stored when it was trained as a sweep's work unit."""
    concept, trial = word_key.rsplit("/", 1)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in concept)
    digest = hashlib.sha256(word_key.encode()).hexdigest()[:8]
    return set_path.with_suffix(".units") / f"{safe}-t{trial}-{digest}.safetensors"


def load_unit_word(path: Path, key: str, word_key: str) -> WordSet | None:
    unit = load_wordset(path)
    if unit is None or unit.metadata.get("key") != key or unit.metadata.get("word_key") != word_key:
        return None
    return unit


def train_plan_words(
    source: ConceptModel, split: DatasetSplit, hp, plan: WordsPlan, which: list[int], reporter: Reporter, state_path: Path
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train the words ``which`` (indices into the plan) together, continuing from the training
    checkpoint at ``state_path`` if one for exactly these words exists. Returns the vectors
    ``[len(which), n, dim]``, each word's losses ``[steps, len(which)]`` and the fracturing facts."""
    (vectors,), (losses,), (facts,) = train_plans_together(source, split, hp, [(plan, which)], reporter, state_path)
    return vectors, losses, facts


def stored_curve(losses: torch.Tensor, steps: int) -> list[float]:
    """The loss curve a word set stores: the mean of the given words' losses ``[steps, W]``,
    at most about 100 points."""
    return losses.mean(dim=1)[:: max(1, steps // 100)].tolist()


def train_plans_together(
    source: ConceptModel, split: DatasetSplit, hp, parts: list[tuple[WordsPlan, list[int]]], reporter: Reporter, state_path: Path
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[dict]]:
    """Train the words of several plans of one source model and split in one batch (e.g. the
    deltas of a fracturing sweep: each word keeps its own ball and its own random stream, so it
    trains the same as in its own run). ``parts`` are ``(plan, word indices)``; returns each
    part's vectors ``[len(which), n, dim]``, its words' losses ``[steps, len(which)]`` and its
    fracturing facts.
    Continues from the training checkpoint at ``state_path`` if one for exactly these words exists."""
    remove_stale_temps(state_path)
    if len(parts) == 1 and len(parts[0][1]) == len(parts[0][0].concepts):
        key = parts[0][0].key
    else:
        key = cache_key({"plans": [{"plan": plan.key, "words": [plan.word_keys[i] for i in which]} for plan, which in parts]})
    index = {name: i for i, name in enumerate(split.concept_names)}
    concepts = [plan.concepts[i] for plan, which in parts for i in which]
    word_keys = [plan.word_keys[i] for plan, which in parts for i in which]
    init = source.token_vectors([plan.init_words[i] for plan, which in parts for i in which]).to("cpu", torch.float32)
    init = init[:, None, :].expand(-1, hp.n_vectors, -1).contiguous()
    resume = load_train_state(state_path, key, tuple(init.shape), hp.steps)
    if resume is not None:
        reporter.log(f"resuming training at step {resume.step} of {hp.steps} from {state_path}")
        journal.record(state_path, f"training checkpoint (step {resume.step} of {hp.steps})")

    def checkpoint(state: TrainState) -> None:
        save_train_state(state_path, state, key)
        journal.record(state_path, f"training checkpoint (step {state.step} of {hp.steps})")

    ball, facts = _plans_ball(source, parts)
    config = TrainConfig(steps=hp.steps, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, batch_size=hp.batch_size, seed=hp.seed)
    data = TrainingData(split.train, split.concept_names)
    with reporter.stage(f"train {len(concepts)} words on {source.family}", total=hp.steps) as stage:
        trained = train_words(
            source, data, init, [index[c] for c in concepts], config, progress=lambda n, loss: stage.advance(n, loss=loss),
            resume=resume, checkpoint=checkpoint, checkpoint_every=checkpoint_interval(hp.steps), ball=ball,
            word_keys=word_keys,
        )
    sizes = [len(which) for _, which in parts]
    return list(trained.vectors.split(sizes)), list(trained.word_losses.split(sizes, dim=1)), facts


def _plans_ball(source: ConceptModel, parts: list[tuple[WordsPlan, list[int]]]) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, list[dict]]:
    """The delta balls of every word of ``parts`` (None when no plan is a fracturing one) and
    each part's facts. Plans trained together are all fracturing plans or none."""
    fracturing = ["fracture" in plan.key_parts for plan, _ in parts]
    if not any(fracturing):
        return None, [{} for _ in parts]
    if not all(fracturing):
        raise ValueError("plans trained together must all be fracturing plans, or none")
    from vwbench.training.fracture import word_ball

    centers, radii, facts = [], [], []
    for plan, which in parts:
        (c, r), f = word_ball(source, [plan.concepts[i] for i in which], plan.key_parts["fracture"])
        centers.append(c)
        radii.append(r)
        facts.append(f)
    return (torch.cat(centers), torch.cat(radii)), facts


def obtain_words(source: ConceptModel, source_ckpt, task, split: DatasetSplit, hp, out_dir: Path, reporter: Reporter, plan: WordsPlan | None = None) -> tuple[WordSet, Path]:
    """The trained words of this (model, dataset, settings): from the cache, assembled from the
    words a sweep trained as separate units, or trained now under the words' lock (continuing
    from a training checkpoint a killed run left). Only the words without a stored unit train."""
    plan = plan or plan_words(source, source_ckpt, split, hp)
    key = plan.key
    path = words_path(out_dir, split, source.family, key)
    state_path = path.with_suffix(".trainstate")

    def load() -> WordSet | None:
        return _stored_words(path, key)

    def compute() -> WordSet:
        remove_stale_temps(path)
        units = [load_unit_word(unit_word_path(path, k), key, k) for k in plan.word_keys]
        missing = [i for i, u in enumerate(units) if u is None]
        vectors: list[torch.Tensor | None] = [None if u is None else u.vectors[0] for u in units]
        curves = [u.metadata.get("loss_curve", []) for u in units if u is not None]
        ball_facts: dict = {}
        if len(missing) < len(units):
            reporter.log(f"{len(units) - len(missing)} of {len(units)} words were trained as sweep units")
        if missing:
            trained, losses, ball_facts = train_plan_words(source, split, hp, plan, missing, reporter, state_path)
            for row, i in enumerate(missing):
                vectors[i] = trained[row]
                curves.append(stored_curve(losses[:, row : row + 1], hp.steps))
        for u in units:
            if u is not None:
                ball_facts.update(u.metadata.get("fracture_anchors") or {})
        words = _word_set(source, plan, torch.stack(vectors), curves, ball_facts)  # type: ignore[arg-type]
        _store_words(path, words, state_path, reporter)
        from vwbench.units import remove_finished_chunk_states

        # a sweep's chunks that trained some of these words (or saved a checkpoint and stopped)
        # are done with: their checkpoints go
        remove_finished_chunk_states(out_dir, path, lambda: True)
        return words

    words, reused = compute_once(out_dir, f"words-{key[:32]}", load=load, compute=compute, what=f"the words of {source.family} on {split.name}", log=reporter.log)
    if reused:
        reporter.log(f"reusing trained words {path}{made_elsewhere(words.metadata.get('git_commit'))}")
        journal.record(path, "trained words", reused=True)
        _drop_train_state(state_path)  # a run killed after saving its words leaves its last checkpoint
    return words, path


def _stored_words(path: Path, key: str) -> WordSet | None:
    """The word set stored at ``path`` if it is intact and has cache key ``key``."""
    cached = load_wordset(path)
    return cached if cached is not None and cached.metadata.get("key") == key else None


def _word_set(source: ConceptModel, plan: WordsPlan, vectors: torch.Tensor, curves: list[list[float]], ball_facts: dict) -> WordSet:
    """The stored form of a plan's trained words (``curves``: the loss curves they trained with)."""
    length = min((len(c) for c in curves), default=0)
    mean_curve = [sum(c[s] for c in curves) / len(curves) for s in range(length)]
    return WordSet(
        vectors=vectors,
        concepts=plan.concepts,
        trials=plan.trials,
        init_words=plan.init_words,
        metadata={"key": plan.key, "vocab_hash": source.vocabulary().hash(), "loss_curve": mean_curve, "git_commit": git_commit(), **plan.key_parts,
                  **({"fracture_anchors": ball_facts} if ball_facts else {})},
    )


def _store_words(path: Path, words: WordSet, state_path: Path | None, reporter: Reporter) -> None:
    """Save a word set; its training checkpoint (if given) is no longer needed."""
    save_wordset(path, words)
    reporter.log(f"saved trained words {path}")
    journal.record(path, "trained words")
    faults.point("words-saved")
    if state_path is not None:
        _drop_train_state(state_path)


def obtain_words_together(source: ConceptModel, split: DatasetSplit, hp, plans: list[WordsPlan], out_dir: Path, reporter: Reporter) -> list[Path]:
    """Store the word sets of several plans of one source model and split (the deltas of a
    fracturing sweep), training all that are not stored yet in one batch; ``obtain_words`` then
    finds them. Plans with words stored as sweep units are left to ``obtain_words``, which
    trains only their missing words. Returns each plan's word-set path."""
    paths = [words_path(out_dir, split, source.family, plan.key) for plan in plans]

    def stored(plan: WordsPlan, path: Path) -> bool:
        return _stored_words(path, plan.key) is not None or path.with_suffix(".units").is_dir()

    first_of_key = {plan.key: i for i, plan in reversed(list(enumerate(plans)))}  # a delta given twice trains once
    pending = [i for i in sorted(first_of_key.values()) if not stored(plans[i], paths[i])]
    if not pending:
        return paths
    with contextlib.ExitStack() as locks:
        # each plan's words lock, the one obtain_words (a `vwbench run`) takes: another process
        # training or storing these words waits instead of training them twice or deleting this
        # one's temp files; taken in key order, so two delta sweeps cannot deadlock
        for i in sorted(pending, key=lambda j: plans[j].key):
            locks.enter_context(exclusive(out_dir, f"words-{plans[i].key[:32]}", what=f"the words of {source.family} on {split.name}", log=reporter.log))
        todo = [i for i in pending if not stored(plans[i], paths[i])]  # stored while this one waited
        if not todo:
            return paths
        state_path = paths[todo[0]].parent / f"together-{cache_key([plans[i].key for i in todo])[:16]}.trainstate"
        parts = [(plans[i], list(range(len(plans[i].concepts)))) for i in todo]
        vectors, losses, facts = train_plans_together(source, split, hp, parts, reporter, state_path)
        for i, v, part_losses, f in zip(todo, vectors, losses, facts):
            curve = stored_curve(part_losses, hp.steps)  # this plan's words only, not every delta's
            remove_stale_temps(paths[i])
            _store_words(paths[i], _word_set(source, plans[i], v.clone(), [curve], f), None, reporter)
        _drop_train_state(state_path)
    return paths


def _drop_train_state(state_path: Path) -> None:
    try:
        state_path.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder: the stale checkpoint is harmless (its words exist)
    journal.forget(state_path)


def transfer_words(name_or_method, source: ConceptModel, target: ConceptModel, vectors: torch.Tensor, init_words: list[str] | None = None):
    """Fit a transfer (a registry name or a ready method) on the two vocabularies and map the
    words; ``init_words`` (each word's concept's init word) is what ``anchor`` uses."""
    from vwbench.transfer import TransferMethod, get_transfer

    method = name_or_method if isinstance(name_or_method, TransferMethod) else get_transfer(name_or_method)
    method.fit(source.vocabulary(), target.vocabulary())
    if init_words is None:
        return method, method.map(vectors)
    return method, method.map_words(vectors, init_words)


WORD_NORM_LIMIT = 1e4  # x the target's largest vocabulary row: beyond it a model's activations overflow


def check_mapped_words(mapped: torch.Tensor, target: ConceptModel, transfer: str) -> None:
    """A one-line error for transferred (or submitted) words no model can be run on: non-finite
    values, or vectors orders of magnitude longer than every row of the target's vocabulary (the
    target's activations overflow to inf/NaN, and a metric would fail deep inside)."""
    if not torch.isfinite(mapped).all():
        raise UserError(f"transfer {transfer} gave non-finite word vectors (NaN or inf) on {target.family}; check the method or the submitted words")
    too_long = overlong_words(mapped, target.vocabulary().matrix)
    if too_long is not None:
        longest, longest_row = too_long
        raise UserError(
            f"transfer {transfer} gave word vectors of norm up to {longest:.3g} on {target.family}, whose vocabulary rows "
            f"are at most {longest_row:.3g} long; check the method or the submitted words"
        )


def overlong_words(vectors: torch.Tensor, vocabulary_matrix: torch.Tensor) -> tuple[float, float] | None:
    """``(longest vector norm, longest vocabulary row norm)`` when ``vectors`` are more than
    :data:`WORD_NORM_LIMIT` times longer than every row of the vocabulary; else ``None``."""
    longest_row = float(vocabulary_matrix.norm(dim=-1).max())
    longest = float(vectors.double().norm(dim=-1).max()) if vectors.numel() else 0.0  # float32 norms of 1e30 overflow
    return (longest, longest_row) if longest > WORD_NORM_LIMIT * longest_row else None


def evaluate_words(target: ConceptModel, judge, mapped: torch.Tensor, words: WordSet, split: DatasetSplit, task, hp, reporter: Reporter, samples: dict | None = None) -> list[Predictions]:
    """Predictions of every word on the target. A generation target also puts the first image of
    each concept's first word into ``samples`` (concept -> PIL image) when it is given."""
    index = {name: i for i, name in enumerate(split.concept_names)}
    ev = task.eval
    total = len(words.concepts) * (ev.generations_per_word if target.kind == "generation" else 1)
    with reporter.stage(f"evaluate on {target.family}", total=total if target.kind == "generation" else None) as stage:
        ctx = EvalContext(
            concepts=split.concept_names,
            seed=hp.seed,
            judge=judge,
            generations_per_word=ev.generations_per_word,
            inference_steps=ev.inference_steps,
            batch_size=ev.batch_size,
            progress=lambda n: stage.advance(n),
            options={"guidance_scale": ev.guidance_scale, **({"samples": samples} if samples is not None else {})},
        )
        return target.predict(mapped, [index[c] for c in words.concepts], split.heldout, ctx)


def repeated_words(mapped: torch.Tensor, concepts: Sequence[str]) -> list[bool]:
    """Per word, whether an earlier word of the same concept is bitwise the same vectors: a
    transfer that ignores the trained word (``anchor`` maps every trial of a concept to its init
    word) evaluates copies, which are one measurement, not several."""
    seen: dict[str, list[torch.Tensor]] = {}
    repeated = []
    for vectors, concept in zip(mapped, concepts):
        earlier = seen.setdefault(concept, [])
        repeated.append(any(torch.equal(vectors, other) for other in earlier))
        earlier.append(vectors)
    return repeated


def score_words(predictions: list[Predictions], words: WordSet, task, kind: str, repeated: Sequence[bool] | None = None) -> dict[str, Any]:
    """Each word's metrics, and the summary over concepts x trials; a word in ``repeated`` (see
    :func:`repeated_words`) is scored and listed but counted once in the summary, so that copies
    do not narrow the interval."""
    from vwbench.metrics import score, summarize

    per_word, values = [], {}
    secondary: dict[str, list[float]] = {}
    repeated = repeated if repeated is not None else [False] * len(predictions)
    for pred, concept, trial, init, copy in zip(predictions, words.concepts, words.trials, words.init_words, repeated):
        scores = score(pred, kind)
        if task.metric not in scores:
            raise UserError(f"task {task.name}: metric {task.metric!r} is not produced for {kind}; it gives {sorted(scores)}")
        per_word.append({"concept": concept, "trial": trial, "init_word": init, **scores})
        if not copy:
            values.setdefault(concept, []).append(scores[task.metric])
        for k, v in scores.items():
            if k != task.metric:
                secondary.setdefault(k, []).append(v)
    summary = summarize(values, bounds=(0.0, 1.0))  # every vwbench metric is a share in [0, 1]
    return {
        "summary": summary,
        "per_word": per_word,
        "secondary": {k: sum(v) / len(v) for k, v in secondary.items()},
    }


def result_path(out_dir: Path, task, transfer: str, key: str) -> Path:
    pair = task.name.replace("->", "-to-")
    return Path(out_dir) / "results" / task.dataset.name / pair / f"{transfer}-{key[:12]}.json"


def result_key(words_key: str, transfer_name: str, task, evaluators: dict[str, dict[str, str]], dataset_hash: str, dtype: torch.dtype) -> str:
    """The cache key of one result: the words, the transfer, the target's spec and settings, the
    sha256 of the files of the models that evaluate (target, and judge for generation), the
    dataset's manifest (the held-out images; submitted words' own key does not hold it), the
    task's version where it was bumped past 1, vwbench's release, and the evaluation dtype where it
    is not float32 (fp16 on a GPU scores differently)."""
    parts: dict[str, Any] = {
        "words": words_key,
        "transfer": transfer_name,
        "target": task.target.model_dump(mode="json"),
        "eval": task.eval.model_dump(mode="json"),
        "dataset": dataset_hash,
    }
    if evaluators:
        parts["evaluator_files"] = evaluators
    if getattr(task, "version", 1) != 1:  # a bumped task version is a new definition: evaluated again (version 1 keeps the old keys)
        parts["task_version"] = task.version
    return cache_key({**parts, **release_key_part(), **dtype_key_part(dtype)})


def load_stored_result(path: Path, task, transfer_name: str, hp, log: Callable[[str], None]) -> RunResult | None:
    """The finished result at ``path`` if it is intact and is this run's; ``None`` (recompute)
    when it is missing, torn or does not match."""
    if not Path(path).is_file():
        return None
    try:
        stored = read_result(path)
    except UserError as exc:
        log(f"ignoring a damaged result ({exc}); computing it again")
        return None
    expected = (task.name, task.dataset.name, transfer_name, hp.seed, hp.steps, hp.trials)
    if (stored.task, stored.dataset, stored.transfer, stored.seed, stored.steps, stored.n_trials) != expected:
        log(f"ignoring {path}: it holds another run's result; computing it again")
        return None
    return stored


def write_result(*, task, hp, split, words, words_path, scored, transfer_name, method, checkpoints, device, dtype, timer, version, path: Path,
                 embeddings: dict | None = None, extra_params: dict | None = None) -> tuple[RunResult, Path]:
    """Store the result; ``embeddings`` (a submitted word file's name, sha256, path and the transfer
    that carried it) goes into ``transfer_params`` so the run can be repeated and checked, and so
    does ``extra_params`` (what else identifies the transfer: a method object's class and key)."""
    summary = scored["summary"]
    params = {**method.describe(), **(extra_params or {})}
    if embeddings is not None:
        params = {**params, "embeddings": embeddings}
    result = RunResult(
        task=task.name,
        source=task.source.family,
        target=task.target.family,
        dataset=task.dataset.name,
        metric=task.metric,
        value=summary.value,
        ci95=summary.ci95,
        per_concept=summary.per_concept,
        per_word=scored["per_word"],
        metrics=scored["secondary"],
        transfer=transfer_name,
        transfer_params=params,
        n_trials=hp.trials,
        fracture=_fracture_record(words.metadata),
        steps=hp.steps,
        seed=hp.seed,
        provenance={
            "vwbench_version": version,
            "git_commit": git_commit(),
            "task_version": task.version,
            "checkpoints": checkpoints,
            "dataset_manifest_hash": split.manifest.hash,
            "words_file": str(words_path),
            "versions": library_versions(),
            "device": str(device),
            "dtype": str(dtype).replace("torch.", ""),
            "machine": compute_environment(str(device)),
            "settings": {"hyperparameters": hp.model_dump(mode="json"), "eval": task.eval.model_dump(mode="json")},
            "wall_time_s": timer,
            "created": utc_now(),
        },
    )
    remove_stale_temps(path)
    atomic_write_json(path, result.model_dump(mode="json"), phase="result")
    journal.record(path, "result")
    return result, path


def _fracture_record(metadata: dict) -> dict | None:
    """delta, anchors and each anchor's ball facts of fractured words (None for ordinary words)."""
    if "fracture" not in metadata:
        return None
    return {**metadata["fracture"], "anchor_facts": metadata.get("fracture_anchors", {})}


def write_samples(result_file: Path, samples: dict) -> Path | None:
    """Sample generations beside a result, ``<result stem>.samples/<concept>.png`` (what the
    leaderboard page shows). Each file is written atomically, with the temp files of a killed
    earlier writer removed (call it under the result's lock, before the result is written)."""
    if not samples:
        return None
    import io

    folder = result_file.with_suffix(".samples")
    folder.mkdir(parents=True, exist_ok=True)
    for concept, image in samples.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        remove_stale_temps(folder / f"{concept}.png")
        atomic_write_bytes(folder / f"{concept}.png", buffer.getvalue(), phase="samples")
    return folder
