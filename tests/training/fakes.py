"""Stand-ins for a concept model and its training data, for the trainer's own tests: a loss that
pulls every vector towards 1 (no model weights), and data with named concepts."""

from __future__ import annotations

import torch


class QuadraticModel:
    """``loss`` = per word, the squared distance of its vectors from 1."""

    device = torch.device("cpu")

    def prepare(self, data):
        return None

    def cpu_words_per_pass(self, batch_size):
        return None

    def loss(self, vectors, word_concepts, prepared, generators, batch_size):
        return (vectors - 1.0).pow(2).flatten(1).sum(dim=1)


class NamedConcepts:
    """Training data that only names its concepts (the trainer's checks read no more)."""

    def __init__(self, *concepts: str) -> None:
        self.concepts = list(concepts)
