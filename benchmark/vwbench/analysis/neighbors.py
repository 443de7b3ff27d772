"""The nearest vocabulary words of trained words and of their transferred versions.

Distances are Euclidean in each model's input-embedding space (the metric of the fracturing
experiment's Eq. 4). Each of a word's vectors is reported separately.
"""

from __future__ import annotations

from typing import Any

import torch

from vwbench.models.base import Vocabulary


def _display(token: str) -> str:
    return token[:-4] if token.endswith("</w>") else token


def nearest_words(vectors: torch.Tensor, vocab: Vocabulary, k: int) -> list[list[list[tuple[str, float]]]]:
    """Per word, per vector: the ``k`` nearest vocabulary tokens and their distances.
    ``vectors`` is ``[W, n, d]``."""
    matrix = vocab.matrix.to(torch.float64)
    flat = vectors.reshape(-1, vectors.shape[-1]).to(torch.float64)
    distances = torch.cdist(flat, matrix)  # [W*n, V]
    values, index = distances.topk(min(k, matrix.shape[0]), dim=-1, largest=False)
    rows = [[(_display(vocab.tokens[i]), round(float(v), 5)) for v, i in zip(vs, ix)] for vs, ix in zip(values.tolist(), index.tolist())]
    n = vectors.shape[1]
    return [rows[w * n : (w + 1) * n] for w in range(vectors.shape[0])]


def neighbor_report(words: Any, source_vocab: Vocabulary, trained: torch.Tensor, target_vocab: Vocabulary, mapped: torch.Tensor, k: int) -> list[dict]:
    """One entry per word: concept, trial, init word, and the nearest source and target words of
    each of its vectors."""
    src = nearest_words(trained, source_vocab, k)
    tgt = nearest_words(mapped, target_vocab, k)
    return [
        {"concept": c, "trial": t, "init_word": i, "source": s, "target": g}
        for c, t, i, s, g in zip(words.concepts, words.trials, words.init_words, src, tgt)
    ]
