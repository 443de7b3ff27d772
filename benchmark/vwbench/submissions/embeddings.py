"""An embeddings submission as the run's word set (``vwbench run --embeddings PATH``).

The file replaces training: its words must live in the task's *source* model's space (family and
vocabulary hash), belong to the task's dataset and cover exactly its concepts. All of that is
checked before any model is asked to evaluate them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from vwbench.errors import UserError
from vwbench.results.words_store import WordSet
from vwbench.submissions.validate import check_embeddings, concept_problems


SUBMITTED_WORDS_FIX = "the submitted words are too long for it: submit words of fewer vectors"


def embedding_problems(meta, words: dict[str, torch.Tensor], *, family: str, vocab_hash: str | None, dim: int | None, dataset: str,
                       concepts: list[str] | None) -> list[str]:
    """Every mismatch between a valid embeddings file (its metadata and words) and a source
    model (family, vocabulary hash, width; the last two not checked where None: the model is not
    loaded yet) and dataset (name, concepts; not checked where None)."""
    problems = []
    if meta.model != family:
        problems.append(f"the words are in {meta.model}'s space, the task's source model is {family}")
    if meta.dataset != dataset:
        problems.append(f"the words are for dataset {meta.dataset}, the task's is {dataset}")
    if vocab_hash is not None and meta.vocab_hash != vocab_hash:
        problems.append(f"vocab_hash {meta.vocab_hash[:12]}… is not the source model's ({vocab_hash[:12]}…): the words were trained on another checkpoint")
    if concepts is not None:
        problems += concept_problems(words, concepts)
    d = next(iter(words.values())).shape[-1]
    if dim is not None and d != dim:
        problems.append(f"the words are {d}-dim, the source model's embeddings are {dim}-dim")
    return problems


def check_embeddings_for_task(path: Path, *, family: str, dataset: str, concepts: list[str]) -> None:
    """What an embeddings file must match in a task without its models (format, source family,
    dataset, concepts): ``vwbench run --embeddings`` checks it before any model is loaded."""
    from vwbench.submissions.validate import detect_kind

    if detect_kind(Path(path)) == "linear-map":
        raise UserError(f"--embeddings {path}: this is a linear-map file; pass it with --transfer")
    _matching_words(Path(path), family=family, vocab_hash=None, dim=None, dataset=dataset, concepts=concepts)


def _matching_words(path: Path, *, family: str, vocab_hash: str | None, dim: int | None, dataset: str, concepts: list[str]):
    """The metadata and words of a valid embeddings file that matches the task (see
    :func:`embedding_problems`); a ``UserError`` naming every problem otherwise."""
    report = check_embeddings(path)
    report.raise_if_bad()
    meta, words = report.info["meta"], report.info["words"]
    problems = embedding_problems(meta, words, family=family, vocab_hash=vocab_hash, dim=dim, dataset=dataset, concepts=concepts)
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems))
    return meta, words


def load_embedding_words(path: Path, *, family: str, vocab_hash: str, dim: int, dataset: str, concepts: list[str], init_words: dict[str, str]) -> WordSet:
    """The words of an embeddings file, concept-major in ``concepts`` order; raises ``UserError``
    naming every mismatch with the task."""
    path = Path(path)
    meta, words = _matching_words(path, family=family, vocab_hash=vocab_hash, dim=dim, dataset=dataset, concepts=concepts)
    vectors, names, trials, inits = [], [], [], []
    for concept in concepts:
        for t, word in enumerate(words[concept]):
            vectors.append(word)
            names.append(concept)
            trials.append(t)
            inits.append(init_words[concept])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    about = meta.model_dump(exclude_none=True)
    return WordSet(
        vectors=torch.stack(vectors).to(torch.float32),
        concepts=names,
        trials=trials,
        init_words=inits,
        metadata={"key": f"embeddings-{sha}", "vocab_hash": vocab_hash, "embeddings": {"file": path.name, "sha256": sha, **about}},
    )
