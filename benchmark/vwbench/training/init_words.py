"""Which vocabulary word each trial of a concept starts from.

Trial 0 starts from the concept's init word (the paper: the single token closest to the
concept's name, listed with the dataset). The paper varies the initialization word across its
randomized trials without saying how; vwbench takes, for trial ``t >= 1``, the ``t``-th nearest
whole-word token to the init word by cosine similarity in the source model's own input-embedding
table (excluding the dataset's other concept names and init words, so a trial never starts as
another concept).
This keeps every start near the concept's name and makes the choice deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vwbench.models.base import Vocabulary


def _is_whole_word(token: str) -> bool:
    return token.endswith("</w>") and token[:-4].isalpha() and len(token) > 5


def concept_exclusions(concepts: Sequence[Any]) -> list[str]:
    """The words no trial may start from: every concept's name and init word (``concepts`` have
    ``name`` and ``init_word``). Where names are not single tokens (DreamBooth-like instances),
    the init words are what a trial could otherwise start "as" another concept."""
    return [*(c.name for c in concepts), *(c.init_word for c in concepts)]


def choose_init_words(
    vocab: Vocabulary, init_word: str, trials: int, exclude: Sequence[str] = ()
) -> list[str]:
    """Init words for trials ``0 .. trials-1`` of one concept."""
    key = init_word + "</w>"
    if key not in vocab.tokens:
        raise ValueError(f"init word {init_word!r} is not a single token of this model's vocabulary")
    if trials <= 1:
        return [init_word][:trials]
    excluded = {init_word, *exclude}
    candidates = [i for i, t in enumerate(vocab.tokens) if _is_whole_word(t) and t[:-4] not in excluded]
    matrix = torch.nn.functional.normalize(vocab.matrix.to(torch.float64), dim=-1)
    anchor = matrix[vocab.tokens.index(key)]
    sims = matrix[candidates] @ anchor
    # stable order: similarity, then token string, so ties never depend on sort internals
    ranked = sorted(zip((-sims).tolist(), (vocab.tokens[i] for i in candidates)))
    neighbours = [tok[:-4] for _, tok in ranked[: trials - 1]]
    if len(neighbours) < trials - 1:
        raise ValueError(f"vocabulary has too few whole words for {trials} trials of {init_word!r}")
    return [init_word, *neighbours]
