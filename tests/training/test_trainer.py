from dataclasses import replace

import pytest
import torch

from vwbench.models.base import ConceptModel, TrainingData, Vocabulary
from vwbench.training import TrainConfig, choose_init_words, train_words
from vwbench.training.trainer import project_to_ball, word_passes, words_for_memory


class QuadraticModel(ConceptModel):
    """Test double: word w of concept c has loss ||v - target_c||^2 averaged over its vectors."""

    family = "toy"
    kind = "classification"

    def __init__(self, targets: torch.Tensor):
        self.targets = targets
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    @classmethod
    def from_pretrained(cls, path, *, device="cpu", dtype=torch.float32):
        raise NotImplementedError

    @property
    def embedding_dim(self):
        return self.targets.shape[1]

    def vocabulary(self):
        raise NotImplementedError

    def token_vectors(self, words):
        raise NotImplementedError

    def word_prompt(self, n_vectors):
        raise NotImplementedError

    def prepare(self, data):
        return None

    def loss(self, vectors, word_concepts, prepared, generator, batch_size=8):
        t = self.targets[list(word_concepts)]
        return ((vectors - t[:, None, :]) ** 2).sum(-1).mean(-1)

    def predict(self, vectors, word_concepts, heldout, ctx):
        raise NotImplementedError


def test_training_many_words_at_once_equals_one_at_a_time():
    torch.manual_seed(0)
    model = QuadraticModel(torch.randn(3, 5))
    init = torch.randn(6, 2, 5)
    concepts = [0, 1, 2, 0, 1, 2]
    data = TrainingData([], ["a", "b", "c"])
    config = TrainConfig(steps=50, lr=0.05)
    together = train_words(model, data, init, concepts, config).vectors
    for w in range(6):
        alone = train_words(model, data, init[w : w + 1], [concepts[w]], config).vectors
        torch.testing.assert_close(alone[0], together[w], rtol=0, atol=1e-6)


def test_each_word_draws_its_own_batches_whichever_words_share_its_batch():
    from tests.faults.test_units import NoisyModel

    torch.manual_seed(0)
    model = NoisyModel(torch.randn(3, 5))
    init = torch.randn(6, 2, 5)
    concepts = [0, 1, 2, 0, 1, 2]
    keys = [f"{c}/{i}" for i, c in enumerate("abcabc")]
    data = TrainingData([], ["a", "b", "c"])
    config = TrainConfig(steps=30, lr=0.05, seed=3)
    together = train_words(model, data, init, concepts, config, word_keys=keys).vectors
    reordered = train_words(model, data, init.flip(0), concepts[::-1], config, word_keys=keys[::-1]).vectors
    torch.testing.assert_close(reordered.flip(0), together, rtol=0, atol=1e-6)
    for w in range(6):
        alone = train_words(model, data, init[w : w + 1], [concepts[w]], config, word_keys=[keys[w]]).vectors
        torch.testing.assert_close(alone[0], together[w], rtol=0, atol=1e-6)
    # another seed or another key gives another random stream
    other = train_words(model, data, init[:1], concepts[:1], config, word_keys=["a/9"]).vectors
    assert not torch.allclose(other[0], together[0])


def test_words_trained_a_few_per_pass_equal_one_pass():
    from tests.faults.test_units import NoisyModel

    torch.manual_seed(0)
    model = NoisyModel(torch.randn(3, 5))
    init = torch.randn(7, 2, 5)
    concepts = [0, 1, 2, 0, 1, 2, 0]
    keys = [f"w{i}" for i in range(7)]
    data = TrainingData([], ["a", "b", "c"])
    config = TrainConfig(steps=20, lr=0.05, seed=2)
    one = train_words(model, data, init, concepts, config, word_keys=keys)
    for per_pass in (1, 3, 7, 50):
        split = train_words(model, data, init, concepts, replace(config, words_per_pass=per_pass), word_keys=keys)
        torch.testing.assert_close(split.vectors, one.vectors, rtol=0, atol=1e-6)
        assert split.loss_curve == pytest.approx(one.loss_curve, abs=1e-6)


def test_word_passes_cover_every_word_once():
    assert word_passes(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert word_passes(2, 50) == [slice(0, 2)] and word_passes(3, 0) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_words_for_memory_keeps_headroom_and_at_least_one_word():
    gib = 2**30
    assert words_for_memory(80 * gib, 12 * gib, 100) == 5  # SD 2.1 at 768 px on an 80 GB card
    assert words_for_memory(80 * gib, 1 * gib, 10) == 10
    assert words_for_memory(4 * gib, 12 * gib, 100) == 1  # never zero: one word per pass, or an honest OOM


def test_training_lowers_the_loss():
    model = QuadraticModel(torch.ones(1, 4))
    result = train_words(model, TrainingData([], ["a"]), torch.zeros(1, 2, 4), [0], TrainConfig(steps=100, lr=0.05))
    assert result.loss_curve[-1] < 0.1 * result.loss_curve[0]


def test_projection_keeps_every_step_inside_the_ball():
    model = QuadraticModel(torch.full((1, 4), 10.0))
    centers = torch.zeros(1, 4)
    radii = torch.tensor([0.5])
    seen = []

    class Spy(QuadraticModel):
        def loss(self, vectors, *args, **kwargs):
            seen.append(vectors.detach().clone())
            return super().loss(vectors, *args, **kwargs)

    spy = Spy(model.targets)
    out = train_words(spy, TrainingData([], ["a"]), torch.zeros(1, 3, 4), [0], TrainConfig(steps=30, lr=0.1), ball=(centers, radii))
    for v in seen + [out.vectors]:
        assert (v - centers[:, None]).norm(dim=-1).max() <= 0.5 + 1e-6
    # the optimum is outside the ball, so the word ends on its surface
    assert torch.allclose((out.vectors - centers[:, None]).norm(dim=-1), torch.tensor(0.5), atol=1e-5)


def test_delta_zero_leaves_the_anchor_unchanged():
    model = QuadraticModel(torch.randn(1, 4))
    anchor = torch.randn(1, 4)
    out = train_words(model, TrainingData([], ["a"]), torch.randn(1, 2, 4), [0], TrainConfig(steps=5, lr=0.1), ball=(anchor, torch.zeros(1)))
    assert torch.equal(out.vectors, anchor[:, None].expand(1, 2, 4))


def test_project_to_ball_is_identity_inside():
    v = torch.tensor([[[0.1, 0.0]]])
    assert torch.equal(project_to_ball(v, torch.zeros(1, 2), torch.ones(1)), v)


def _vocab():
    tokens = ["dog</w>", "puppy</w>", "cat</w>", "car</w>", "ab", "a</w>"]
    matrix = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.0, 1.0], [1.0, 0.0], [1.0, 0.01]])
    return Vocabulary(tokens, matrix)


def test_init_words_start_at_the_init_word_then_nearest_whole_words():
    assert choose_init_words(_vocab(), "dog", 3) == ["dog", "puppy", "cat"]


def test_init_words_skip_other_concepts_and_fragments():
    # "ab" is not a whole word, "a" is too short to be a useful start, "cat" is another concept
    assert choose_init_words(_vocab(), "dog", 3, exclude=["cat"]) == ["dog", "puppy", "car"]


def test_no_trial_starts_at_another_concepts_name_or_init_word():
    """DreamBooth-like names are not tokens; their init words are what must be skipped."""
    from types import SimpleNamespace

    from vwbench.training.init_words import concept_exclusions

    concepts = [SimpleNamespace(name="bluedog", init_word="dog"), SimpleNamespace(name="redcat", init_word="cat")]
    assert concept_exclusions(concepts) == ["bluedog", "redcat", "dog", "cat"]
    assert choose_init_words(_vocab(), "dog", 3, exclude=concept_exclusions(concepts)) == ["dog", "puppy", "car"]


def test_init_word_must_be_a_single_token():
    with pytest.raises(ValueError, match="not a single token"):
        choose_init_words(_vocab(), "zebra", 1)
