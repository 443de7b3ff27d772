"""Mutation-testing round 13 pins: repeated words pair each word with its own concept. (The last
concept's init word in an `--embeddings` result's key: tests/test_cache_keys_review.py.)"""

from __future__ import annotations

import torch


def test_repeated_words_pair_each_word_with_its_own_concept() -> None:
    from vwbench.pipeline_steps import repeated_words

    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    assert repeated_words(torch.stack([x, y, x]), ["b", "a", "b"]) == [False, False, True]
