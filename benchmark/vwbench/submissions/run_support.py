"""What ``vwbench run`` needs to evaluate a submission: the transfer (built-in or submitted) with
the name and cache key its result is stored under, and an embeddings file as the word set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vwbench.transfer import TransferMethod


@dataclass
class PreparedTransfer:
    method: TransferMethod
    label: str  # the result's "transfer" (and file name): the built-in's or the submission's name
    key: str  # what the result's cache key holds: the label plus the submission's sha256
    record: dict | None = None  # more for the result's transfer_params (a method object's class and cache key)


def prepare_transfer(arg: str, source_family: str, target_family: str) -> PreparedTransfer:
    from vwbench.submissions.transfers import resolve_transfer

    method = resolve_transfer(arg, source_family, target_family)
    sha = getattr(method, "sha256", None)
    return PreparedTransfer(method, method.name, f"{method.name}@{sha}" if sha else method.name)


def embedding_words(path: Path, source, split, task):
    """The word set of an embeddings file, checked against the task and the loaded source model."""
    from vwbench.submissions.embeddings import load_embedding_words

    vocab = source.vocabulary()
    return load_embedding_words(
        Path(path), family=task.source.family, vocab_hash=vocab.hash(), dim=vocab.dim, dataset=split.name,
        concepts=list(split.concept_names), init_words={c.name: c.init_word for c in split.concepts},
    )


def concept_init_words(split, concepts: list[str]) -> list[str]:
    """Each word's concept's init word (what the ``anchor`` transfer uses)."""
    init = {c.name: c.init_word for c in split.concepts}
    return [init[c] for c in concepts]
