"""Shared fixtures: a small CLIP-format vocabulary that every tiny model is built on."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

# Words every tiny model needs: the prompt, some concept names and init words.
PROMPT_WORDS = ["a", "photo", "of", "the"]
CONCEPT_WORDS = [
    "dog", "cat", "cup", "laptop", "donut", "bear", "bottle", "umbrella", "remote", "scissors",
    "red", "green", "blue", "circle", "square", "triangle", "ring", "cross", "star", "disk",
]


def filler_words(n: int) -> list[str]:
    """Deterministic pronounceable filler words, so the vocabulary has more rows than any tiny
    model has embedding dimensions (the least-squares transfer needs that)."""
    onsets = "bdfgklmnprstvz"
    vowels = "aeiou"
    words = []
    for a, b, c in itertools.product(onsets, vowels, onsets):
        for v in vowels:
            words.append(a + b + c + v)
            if len(words) == n:
                return words
    return words


TEST_WORDS = PROMPT_WORDS + CONCEPT_WORDS + filler_words(300)


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory) -> Path:
    from vwbench.models.vocab_files import write_clip_vocabulary

    d = tmp_path_factory.mktemp("vocab")
    write_clip_vocabulary(TEST_WORDS, d)
    return d


@pytest.fixture(scope="session")
def tiny_tasks(tmp_path_factory, vocab_dir) -> Path:
    """A tasks folder whose `tiny` tier points at freshly built tiny checkpoints of all three
    families (and a judge), with a 2-step, 2-trial `tiny` suite on `synth-tiny`."""
    from tests.tiny_world import build_tiny_tasks

    return build_tiny_tasks(tmp_path_factory.mktemp("tiny"), vocab_dir, steps=2, trials=2, with_sd=True)


@pytest.fixture
def disk_full_at(monkeypatch):
    """``disk_full_at(n)``: from now on the ``n``-th ``os.fsync`` fails as a full disk would
    (for the all-or-nothing writers' tests); undone with the test's monkeypatch."""
    import os

    def arm(n: int) -> None:
        real_fsync, calls = os.fsync, []

        def fsync(fd):
            calls.append(fd)
            if len(calls) == n:
                raise OSError(28, "No space left on device")
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm
