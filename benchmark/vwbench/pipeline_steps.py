"""The stage glue of ``run_task``: one function per step of the data's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vwbench.data.base import DatasetSplit
from vwbench.errors import UserError
from vwbench.models.base import ConceptModel, EvalContext, TrainingData
from vwbench.predictions import Predictions
from vwbench.progress import Reporter
from vwbench.results.atomic import atomic_write_json
from vwbench.results.provenance import git_commit, library_versions, utc_now
from vwbench.results.schema import RunResult
from vwbench.results.words_store import WordSet, cache_key, load_wordset, save_wordset
from vwbench.training import TrainConfig, choose_init_words, train_words


def load_split(task, hp, loader, data_root: Path | None) -> DatasetSplit:
    split = loader(task.dataset, images_per_concept=hp.images_per_concept, data_root=data_root)
    split.validate(hp.images_per_concept)
    return split


def _init_plan(source: ConceptModel, split: DatasetSplit, trials: int) -> tuple[list[str], list[int], list[str]]:
    """Per word (concepts x trials, concept-major): concept, trial, init word."""
    vocab = source.vocabulary()
    concepts, trial_ids, init_words = [], [], []
    names = split.concept_names
    for concept in split.concepts:
        try:
            words = choose_init_words(vocab, concept.init_word, trials, exclude=names)
        except ValueError as exc:
            raise UserError(f"dataset {split.name}, concept {concept.name}: {exc}") from exc
        for t, w in enumerate(words):
            concepts.append(concept.name)
            trial_ids.append(t)
            init_words.append(w)
    return concepts, trial_ids, init_words


def obtain_words(source: ConceptModel, source_ckpt, task, split: DatasetSplit, hp, out_dir: Path, reporter: Reporter) -> tuple[WordSet, Path]:
    """The trained words of this (model, dataset, settings), from the cache or trained now."""
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
    }
    key = cache_key(key_parts)
    path = Path(out_dir) / "words" / split.name / source.family / f"{key[:16]}.safetensors"
    cached = load_wordset(path)
    if cached is not None and cached.metadata.get("key") == key:
        reporter.log(f"reusing trained words {path}")
        return cached, path
    index = {name: i for i, name in enumerate(split.concept_names)}
    init = source.token_vectors(init_words).to("cpu", torch.float32)
    init = init[:, None, :].expand(-1, hp.n_vectors, -1).contiguous()
    config = TrainConfig(steps=hp.steps, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, batch_size=hp.batch_size, seed=hp.seed)
    data = TrainingData(split.train, split.concept_names)
    with reporter.stage(f"train {len(concepts)} words on {source.family}", total=hp.steps) as stage:
        trained = train_words(source, data, init, [index[c] for c in concepts], config, progress=lambda n, loss: stage.advance(n, loss=loss))
    words = WordSet(
        vectors=trained.vectors,
        concepts=concepts,
        trials=trials,
        init_words=init_words,
        metadata={"key": key, "vocab_hash": source.vocabulary().hash(), "loss_curve": trained.loss_curve[:: max(1, hp.steps // 100)], **key_parts},
    )
    save_wordset(path, words)
    return words, path


def transfer_words(name: str, source: ConceptModel, target: ConceptModel, vectors: torch.Tensor):
    from vwbench.transfer import get_transfer

    method = get_transfer(name)
    method.fit(source.vocabulary(), target.vocabulary())
    return method, method.map(vectors)


def evaluate_words(target: ConceptModel, judge, mapped: torch.Tensor, words: WordSet, split: DatasetSplit, task, hp, reporter: Reporter) -> list[Predictions]:
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
            options={"guidance_scale": ev.guidance_scale},
        )
        return target.predict(mapped, [index[c] for c in words.concepts], split.heldout, ctx)


def score_words(predictions: list[Predictions], words: WordSet, task, kind: str) -> dict[str, Any]:
    from vwbench.metrics import score, summarize

    per_word, values = [], {}
    secondary: dict[str, list[float]] = {}
    for pred, concept, trial, init in zip(predictions, words.concepts, words.trials, words.init_words):
        scores = score(pred, kind)
        if task.metric not in scores:
            raise UserError(f"task {task.name}: metric {task.metric!r} is not produced for {kind}; it gives {sorted(scores)}")
        per_word.append({"concept": concept, "trial": trial, "init_word": init, **scores})
        values.setdefault(concept, []).append(scores[task.metric])
        for k, v in scores.items():
            if k != task.metric:
                secondary.setdefault(k, []).append(v)
    summary = summarize(values)
    # every vwbench metric is a share in [0, 1]; a t-interval over few values can leave that range
    low, high = summary.ci95
    summary.ci95 = (max(0.0, low), min(1.0, high))
    return {
        "summary": summary,
        "per_word": per_word,
        "secondary": {k: sum(v) / len(v) for k, v in secondary.items()},
    }


def result_path(out_dir: Path, task, transfer: str, key: str) -> Path:
    pair = task.name.replace("->", "-to-")
    return Path(out_dir) / "results" / task.dataset.name / pair / f"{transfer}-{key[:12]}.json"


def write_result(*, task, hp, split, words, words_path, scored, transfer_name, method, checkpoints, device, dtype, timer, out_dir, version) -> tuple[RunResult, Path]:
    summary = scored["summary"]
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
        transfer_params=method.describe(),
        n_trials=hp.trials,
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
            "wall_time_s": timer,
            "created": utc_now(),
        },
    )
    unit_key = cache_key({
        "words": words.metadata["key"],
        "transfer": transfer_name,
        "target": task.target.model_dump(mode="json"),
        "eval": task.eval.model_dump(mode="json"),
    })
    path = result_path(out_dir, task, transfer_name, unit_key)
    atomic_write_json(path, result.model_dump(mode="json"))
    return result, path
