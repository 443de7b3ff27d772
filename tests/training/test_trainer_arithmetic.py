"""The trainer's arithmetic against a hand-written Adam: the configured betas, eps, lr and number
of steps are the ones applied, each word's gradient is its own loss's (summed over the words of a
pass, never averaged), the per-word random stream depends on the run's seed, and init words are
ranked by cosine similarity."""

from __future__ import annotations

import math

import pytest
import torch

from tests.training.test_trainer import QuadraticModel
from vwbench.models.base import TrainingData, Vocabulary
from vwbench.training import TrainConfig, choose_init_words, train_words
from vwbench.training.trainer import word_seed


def reference_adam(init, targets, concepts, *, steps, lr, betas, eps):
    """Adam (Kingma & Ba, with PyTorch's bias correction) on each word's own loss
    ``mean_n ||v_n - t||^2``, in float64. Returns the vectors and the per-step mean loss (taken
    before each update, as the trainer reports it)."""
    v = init.to(torch.float64).clone()
    t = targets.to(torch.float64)[list(concepts)][:, None, :]
    m = torch.zeros_like(v)
    s = torch.zeros_like(v)
    b1, b2 = betas
    curve = []
    for k in range(1, steps + 1):
        curve.append(float(((v - t) ** 2).sum(-1).mean(-1).mean()))
        g = 2.0 * (v - t) / v.shape[1]  # d/dv of mean over the word's n vectors
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        m_hat = m / (1 - b1**k)
        s_hat = s / (1 - b2**k)
        v = v - lr * m_hat / (s_hat.sqrt() + eps)
    return v, curve


# eps comparable to the gradients, so an update depends on the gradient's scale (an averaged
# instead of summed gradient shows); betas far from the defaults, so a hard-coded pair shows.
ODD = dict(steps=7, lr=0.1, betas=(0.5, 0.75), eps=0.5)


def _problem():
    g = torch.Generator().manual_seed(11)
    targets = torch.randn(3, 4, generator=g) * 2
    init = torch.randn(5, 2, 4, generator=g)
    return targets, init, [0, 1, 2, 0, 1]


def test_train_words_is_adam_with_the_configured_hyperparameters():
    targets, init, concepts = _problem()
    config = TrainConfig(batch_size=8, seed=0, **ODD)
    out = train_words(QuadraticModel(targets), TrainingData([], ["a", "b", "c"]), init, concepts, config)
    want, curve = reference_adam(init, targets, concepts, **ODD)
    torch.testing.assert_close(out.vectors.to(torch.float64), want, rtol=0, atol=2e-5)
    assert len(out.loss_curve) == ODD["steps"] and tuple(out.word_losses.shape) == (ODD["steps"], 5)
    assert out.loss_curve == pytest.approx(curve, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("per_pass", [None, 1, 2])
def test_words_sharing_a_pass_get_their_own_full_gradient(per_pass):
    """With a large eps Adam is not scale-invariant: a word whose gradient were divided by the
    number of words in its pass would move less than when trained alone."""
    targets, init, concepts = _problem()
    config = TrainConfig(batch_size=8, seed=0, words_per_pass=per_pass, **ODD)
    data = TrainingData([], ["a", "b", "c"])
    together = train_words(QuadraticModel(targets), data, init, concepts, config).vectors
    for w in range(init.shape[0]):
        alone = train_words(QuadraticModel(targets), data, init[w : w + 1], [concepts[w]], config).vectors
        torch.testing.assert_close(together[w], alone[0], rtol=0, atol=1e-6)


def test_default_train_config_is_table_2():
    config = TrainConfig()
    assert (config.steps, config.lr, config.betas, config.eps, config.batch_size) == (1000, 1e-4, (0.9, 0.999), 1e-8, 8)


def test_default_hyperparameters_are_table_2():
    from vwbench.registry.schema import Hyperparameters

    hp = Hyperparameters()
    assert (hp.steps, hp.lr, tuple(hp.betas), hp.eps, hp.batch_size, hp.n_vectors, hp.images_per_concept, hp.trials) == (
        1000, 1e-4, (0.9, 0.999), 1e-8, 8, 4, 8, 10,
    )


def test_a_words_random_stream_depends_on_the_runs_seed():
    assert word_seed(0, "dog/0") != word_seed(1, "dog/0")
    assert word_seed(0, "dog/0") != word_seed(0, "dog/1")
    assert word_seed(3, "dog/0") == word_seed(3, "dog/0")
    from tests.faults.test_units import NoisyModel

    torch.manual_seed(0)
    model = NoisyModel(torch.randn(1, 5))
    init, data = torch.randn(1, 2, 5), TrainingData([], ["a"])
    a = train_words(model, data, init, [0], TrainConfig(steps=5, lr=0.05, seed=3), word_keys=["a/0"]).vectors
    b = train_words(model, data, init, [0], TrainConfig(steps=5, lr=0.05, seed=4), word_keys=["a/0"]).vectors
    again = train_words(model, data, init, [0], TrainConfig(steps=5, lr=0.05, seed=3), word_keys=["a/0"]).vectors
    assert torch.equal(a, again) and not torch.allclose(a, b)


def test_init_words_rank_by_cosine_not_dot_product():
    # "giant" is a long row at 45 degrees (dot 3.0, cosine 0.71); "puppy" a short row almost
    # parallel to "dog" (dot 0.9, cosine 0.99): by cosine, "puppy" is the nearer word.
    vocab = Vocabulary(
        ["dog</w>", "giant</w>", "puppy</w>", "house</w>"],
        torch.tensor([[1.0, 0.0], [3.0, 3.0], [0.9, 0.1], [-1.0, 0.2]]),
    )
    assert choose_init_words(vocab, "dog", 3) == ["dog", "puppy", "giant"]


def test_one_or_no_trial_needs_no_neighbours():
    vocab = Vocabulary(["dog</w>", "a</w>"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert choose_init_words(vocab, "dog", 1) == ["dog"]
    assert choose_init_words(vocab, "dog", 0) == []
    with pytest.raises(ValueError, match="too few whole words"):
        choose_init_words(vocab, "dog", 2)


def test_reference_adam_is_torchs_adam():
    """The reference above is PyTorch's Adam (so the first test checks the trainer, not the
    reference): one parameter, a fixed gradient sequence."""
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.75), eps=0.5)
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for _ in range(4):
        opt.zero_grad()
        ((p - target) ** 2).sum().backward()
        opt.step()
    want, _ = reference_adam(torch.zeros(1, 1, 3), target[None], [0], steps=4, lr=0.1, betas=(0.5, 0.75), eps=0.5)
    assert math.isclose(float((want[0, 0] - p.detach()).abs().max()), 0.0, abs_tol=1e-12)
