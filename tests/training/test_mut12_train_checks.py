"""Mutation-testing round 12: `train_words`' input checks. Zero steps is a valid setting (the
words stay their init), and an init that is not [words, vectors, dim] is a ValueError naming
its shape."""

from __future__ import annotations

import pytest
import torch

from vwbench.training.trainer import TrainConfig, train_words

from tests.training.fakes import NamedConcepts, QuadraticModel


def test_zero_steps_trains_nothing_and_keeps_the_init() -> None:
    init = torch.full((2, 1, 4), 0.25)
    trained = train_words(QuadraticModel(), NamedConcepts("a", "b"), init, [0, 1], TrainConfig(steps=0, lr=0.1))
    assert torch.equal(trained.vectors.cpu(), init)


@pytest.mark.parametrize("shape", [(2, 4), (2, 1, 1, 4)])
def test_an_init_of_another_rank_is_a_value_error_naming_its_shape(shape) -> None:
    with pytest.raises(ValueError, match=rf"^init must be \[words, vectors, dim\], not of shape \({shape[0]}, "):
        train_words(QuadraticModel(), NamedConcepts("a", "b"), torch.zeros(shape), [0, 1], TrainConfig(steps=1))


def test_train_words_trains_inside_a_callers_no_grad() -> None:
    with torch.no_grad():
        trained = train_words(QuadraticModel(), NamedConcepts("a", "b"), torch.zeros(1, 1, 4), [0], TrainConfig(steps=5, lr=0.1))
    assert (trained.vectors > 0.3).all() and trained.loss_curve[0] > trained.loss_curve[-1]
