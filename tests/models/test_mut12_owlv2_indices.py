"""Mutation-testing round 12: OWLv2's predict refuses a word concept index one past the last
concept with the same ValueError as any other index outside the concepts (not an IndexError)."""

from __future__ import annotations

import pytest

from vwbench.models.base import EvalContext

from .test_owlv2 import CONCEPTS, adapter, checkpoint, train_examples, word_vectors  # noqa: F401


def test_predict_refuses_the_index_one_past_the_last_concept(adapter, train_examples) -> None:  # noqa: F811
    ctx = EvalContext(concepts=CONCEPTS, options={"max_detections": 2})
    vectors = word_vectors(adapter, ["dog", "cat"])
    with pytest.raises(ValueError, match=r"^word concept index 2 is not one of the 2 concepts \(0\.\.1\)$"):
        adapter.predict(vectors, [0, len(CONCEPTS)], train_examples[:1], ctx)
    with pytest.raises(ValueError, match=r"^word concept index -1 is not one of the 2 concepts"):
        adapter.predict(vectors, [-1, 0], train_examples[:1], ctx)
