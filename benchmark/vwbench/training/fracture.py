"""The fracturing experiment's constraint (Trabucco et al. 2024, Section 5, Eq. 4).

A word is kept in the neighbourhood of an anchor word ``a`` by projected gradient descent:

    ||v - y(a)|| / min_{w != a} ||y(w) - y(a)||  <=  delta

for every one of the word's vectors ``v``, where ``y`` is the source model's own input-embedding
table. The radius of the ball around ``y(a)`` is therefore ``delta`` times the distance from the
anchor to its nearest other vocabulary row: at ``delta < 1`` the anchor is still the word's
nearest vocabulary entry, at ``delta = 0`` the word *is* the anchor.

Anchors default to each concept's ``anchor_word`` (its init word when none is listed, as in the
paper's appendix); ``--anchors`` replaces them, e.g. with unrelated words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vwbench.errors import UserError
from vwbench.models.base import Vocabulary

PAPER_DELTAS = (0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Fracture:
    """``delta`` and the anchor word of each concept."""

    delta: float
    anchors: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"delta": self.delta, "anchors": dict(sorted(self.anchors.items()))}


def parse_anchors(values: Sequence[str] | None, concepts: Sequence[str], defaults: dict[str, str]) -> dict[str, str]:
    """Anchors per concept from ``--anchors`` values: ``concept=word`` pairs (comma-separated or
    repeated) override single concepts; a lone ``word`` anchors every concept. Concepts not named
    keep their default (the dataset's anchor word)."""
    anchors = dict(defaults)
    items = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    named: dict[str, str] = {}
    for item in items:
        if "=" in item:
            concept, word = (s.strip() for s in item.split("=", 1))
            if concept not in concepts:
                raise UserError(f"--anchors names concept {concept!r}, which is not one of the dataset's: {', '.join(concepts)}")
            if concept in named and named[concept] != word:
                raise UserError(f"--anchors gives concept {concept!r} two anchors ({named[concept]!r} and {word!r}); give one")
            named[concept] = anchors[concept] = word
        elif len(items) == 1:
            anchors = {c: item for c in concepts}
        else:
            raise UserError(f"--anchors {item!r}: give one word for all concepts, or concept=word pairs")
    return anchors


def unit_distance(vocab: Vocabulary, word: str) -> tuple[float, str]:
    """Distance from ``word``'s row to its nearest *other* row (rows at distance 0, exact
    duplicates of it, are skipped), and that nearest token."""
    key = word + "</w>"
    if key not in vocab.tokens:
        raise UserError(f"anchor word {word!r} is not a single token of the source model's vocabulary")
    index = vocab.tokens.index(key)
    matrix = vocab.matrix.to(torch.float64)
    distances = (matrix - matrix[index]).norm(dim=-1)
    distances[index] = float("inf")
    distances[distances == 0] = float("inf")
    nearest = int(distances.argmin())
    if not torch.isfinite(distances[nearest]):
        raise UserError(f"anchor word {word!r} has no other distinct row in the vocabulary")
    return float(distances[nearest]), vocab.tokens[nearest]


def ball(vocab: Vocabulary, anchor_vectors: torch.Tensor, word_anchors: Sequence[str], delta: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, dict]]:
    """``(centers [W, d], radii [W], per-anchor facts)`` for :func:`~vwbench.training.train_words`'s
    ``ball``. ``anchor_vectors[w]`` is the embedding of ``word_anchors[w]``."""
    if not math.isfinite(delta) or delta < 0:
        raise UserError(f"--delta must be a finite number >= 0, got {delta}")
    facts: dict[str, dict] = {}
    for word in dict.fromkeys(word_anchors):
        unit, nearest = unit_distance(vocab, word)
        facts[word] = {"unit_distance": unit, "nearest_word": nearest, "radius": delta * unit}
    radii = torch.tensor([facts[w]["radius"] for w in word_anchors], dtype=torch.float32)
    return anchor_vectors.to(torch.float32), radii, facts


def word_ball(source, word_concepts: Sequence[str], fracture: dict) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, dict]]:
    """The ``ball`` argument of :func:`~vwbench.training.train_words` for words of
    ``word_concepts`` on ``source`` (a ``ConceptModel``), from a :meth:`Fracture.describe` dict,
    and the facts of each anchor (unit distance, nearest word, radius) for the result."""
    anchors = [fracture["anchors"][c] for c in word_concepts]
    try:
        vectors = source.token_vectors(anchors).to("cpu", torch.float32)
    except ValueError as exc:
        raise UserError(f"anchor words of the {getattr(source, 'family', 'source')} source model: {exc}; pick a word that is one token (--anchors CONCEPT=WORD)") from exc
    centers, radii, facts = ball(source.vocabulary(), vectors, anchors, float(fracture["delta"]))
    return (centers, radii), facts
