"""Training behaviour that a mutation-testing round found unpinned: an anchor needs a distinct
neighbour and each word gets its own concept's anchor, init words are alphabetic and ties break by
token string, word keys and seeds, Ctrl-C's checkpoint and a resumed training's progress, and which
checkpoints ``load_train_state`` accepts."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save

from tests.faults.test_units import NoisyModel
from tests.training.test_trainer import QuadraticModel
from vwbench.errors import UserError
from vwbench.models.base import TrainingData, Vocabulary
from vwbench.results.words_store import tensor_checksum
from vwbench.training import TrainConfig, choose_init_words, train_words
from vwbench.training.fracture import unit_distance, word_ball
from vwbench.training.state import TrainState, load_train_state, save_train_state
from vwbench.training.trainer import word_seed

VOCAB = Vocabulary(
    ["dog</w>", "cat</w>", "cup</w>", "dup</w>"],
    torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 2.0], [10.0, 0.0]]),
)


def test_an_anchor_whose_rows_are_all_equal_has_no_unit_distance():
    vocab = Vocabulary(["dog</w>", "dig</w>", "do"], torch.ones(3, 2))
    with pytest.raises(UserError, match="no other distinct row"):
        unit_distance(vocab, "dog")


def test_each_word_is_centred_on_its_own_concepts_anchor():
    """Words listed in any concept order get their own concept's anchor row and radius."""
    source = SimpleNamespace(token_vectors=lambda ws: VOCAB.rows([w + "</w>" for w in ws]), vocabulary=lambda: VOCAB)
    fracture = {"delta": 0.5, "anchors": {"a": "dog", "b": "cat"}}
    (centers, radii), facts = word_ball(source, ["b", "a", "b"], fracture)
    assert torch.equal(centers, VOCAB.rows(["cat</w>", "dog</w>", "cat</w>"]))
    assert radii.tolist() == pytest.approx([0.5 * 13 ** 0.5, 0.5 * 2.0, 0.5 * 13 ** 0.5])
    assert facts["dog"]["nearest_word"] == "cup</w>"


def test_init_words_are_alphabetic_whole_words():
    """Numbers and tokens with punctuation are no words to start a trial from, however close."""
    vocab = Vocabulary(
        ["dog</w>", "12345</w>", "dog's</w>", "puppy</w>", "house</w>"],
        torch.tensor([[1.0, 0.0], [1.0, 0.001], [1.0, 0.002], [0.9, 0.1], [-1.0, 0.2]]),
    )
    assert choose_init_words(vocab, "dog", 3) == ["dog", "puppy", "house"]


def test_init_words_tied_in_similarity_are_ordered_by_token_string():
    """Equal rows are equally near: the order is the token string's, not the vocabulary's."""
    vocab = Vocabulary(
        ["dog</w>", "zebra</w>", "apple</w>", "house</w>"],
        torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, 0.6], [-1.0, 0.2]]),
    )
    assert choose_init_words(vocab, "dog", 2) == ["dog", "apple"]
    assert choose_init_words(vocab, "dog", 3) == ["dog", "apple", "zebra"]


def test_a_resumed_training_first_reports_the_steps_already_done():
    """The progress bar of a resumed training starts where the checkpoint was taken, so its
    count reaches ``steps``, not ``steps - done``."""
    torch.manual_seed(0)
    model = NoisyModel(torch.randn(2, 3))
    init, concepts, data = torch.randn(2, 1, 3), [0, 1], TrainingData([], ["a", "b"])
    config = TrainConfig(steps=6, lr=0.05, seed=1)
    saved: list[TrainState] = []
    straight = train_words(model, data, init, concepts, config, checkpoint=saved.append, checkpoint_every=4)
    assert [s.step for s in saved] == [4]
    calls: list[tuple[int, float]] = []
    train_words(model, data, init, concepts, config, resume=saved[0], progress=lambda n, loss: calls.append((n, loss)))
    assert calls[0] == (4, straight.loss_curve[3])
    assert [n for n, _ in calls[1:]] == [1, 1]
    assert sum(n for n, _ in calls) == config.steps


def test_ctrl_c_saves_a_checkpoint_of_the_finished_steps_then_stops():
    """Ctrl-C during a step lets the step finish, saves the state after it (so a rerun resumes
    there), then raises ``KeyboardInterrupt``; no periodic checkpoint is due in between."""
    torch.manual_seed(0)
    model = NoisyModel(torch.randn(2, 3))
    init, concepts, data = torch.randn(2, 1, 3), [0, 1], TrainingData([], ["a", "b"])
    config = TrainConfig(steps=6, lr=0.05, seed=1)
    saved: list[TrainState] = []
    done: list[int] = []

    def progress(n, loss):
        done.append(n)
        if len(done) == 2:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C in the terminal does

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    try:
        with pytest.raises(KeyboardInterrupt):
            train_words(model, data, init, concepts, config, progress=progress, checkpoint=saved.append, checkpoint_every=0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [s.step for s in saved] == [2]
    straight = train_words(model, data, init, concepts, config)
    resumed = train_words(model, data, init, concepts, config, resume=saved[0])
    assert torch.equal(resumed.vectors, straight.vectors)


def test_an_anchor_word_the_source_model_cannot_embed_is_a_user_error():
    def token_vectors(words):
        raise ValueError("'zebra' is not a single token of this model's vocabulary")

    source = SimpleNamespace(token_vectors=token_vectors, vocabulary=lambda: VOCAB)
    with pytest.raises(UserError, match="anchor words of the .* source model: 'zebra' is not a single token"):
        word_ball(source, ["a"], {"delta": 0.5, "anchors": {"a": "zebra"}})


def test_word_keys_must_name_every_word():
    model = QuadraticModel(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="2 words but 1 word keys"):
        train_words(model, TrainingData([], ["a"]), torch.ones(2, 1, 2), [0, 0], TrainConfig(steps=1), word_keys=["a/0"])


def test_word_seeds_are_pinned_so_stored_runs_reproduce():
    """A word's random stream is part of every stored result: the seed of ``(run seed, key)``
    must not change between versions (64-bit digest of the pair, top bit cleared)."""
    assert word_seed(0, "dog/0") == 2720857014965277423
    assert word_seed(7, "dog/2") == 8822582727889719696


# -- checkpoints (training/state.py) -------------------------------------------------------------


def _state(step: int = 2, words: int = 2, **changes) -> TrainState:
    g = torch.Generator().manual_seed(5)
    fields = dict(
        step=step,
        vectors=torch.randn(words, 1, 3, generator=g),
        exp_avg=torch.randn(words, 1, 3, generator=g),
        exp_avg_sq=torch.rand(words, 1, 3, generator=g),
        adam_step=torch.tensor(float(step)),
        generators=torch.stack([torch.Generator().manual_seed(i).get_state() for i in range(words)]),
        loss_curve=[float(i + 1) for i in range(step)],
        word_losses=torch.ones(step, words),
    )
    fields.update(changes)
    return TrainState(**fields)


SHAPE = (2, 1, 3)


def _saved(tmp_path, state: TrainState):
    """``state`` saved under key "key", after checking that an intact save of it loads."""
    path = tmp_path / "s.trainstate"
    save_train_state(path, state, "key")
    back = load_train_state(path, "key", SHAPE, total_steps=5)
    assert back is not None and torch.equal(back.vectors, state.vectors) and back.loss_curve == state.loss_curve
    return path


def test_a_checkpoint_taken_at_the_last_step_is_used(tmp_path):
    """Ctrl-C during the last step saves a state with ``step == steps``: resuming it trains
    nothing more, rather than starting over."""
    path = tmp_path / "s.trainstate"
    save_train_state(path, _state(step=3), "key")
    back = load_train_state(path, "key", SHAPE, total_steps=3)
    assert back is not None and back.step == 3


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(_state(step=0, loss_curve=[], word_losses=torch.ones(0, 2)), id="no-steps"),
        pytest.param(_state(loss_curve=[1.0]), id="curve-shorter-than-steps"),
        pytest.param(_state(word_losses=torch.ones(1, 2)), id="word-losses-shorter-than-steps"),
        pytest.param(_state(generators=torch.stack([torch.Generator().get_state()] * 3)), id="a-generator-too-many"),
        pytest.param(_state(exp_avg=torch.zeros(2, 1, 4)), id="first-moment-of-other-shape"),
        pytest.param(_state(exp_avg_sq=torch.zeros(2, 2, 3)), id="second-moment-of-other-shape"),
    ],
)
def test_a_checkpoint_that_does_not_add_up_is_ignored(tmp_path, state):
    path = tmp_path / "s.trainstate"
    save_train_state(path, state, "key")
    assert load_train_state(path, "key", SHAPE, total_steps=5) is None


def _rewrite(path, tensors, meta):
    """Write ``tensors`` and ``meta`` as a checkpoint with a valid checksum (what an older or
    foreign writer would produce)."""
    meta = dict(meta)
    meta["checksum"] = tensor_checksum(tensors, meta)
    path.write_bytes(save(tensors, metadata=meta))


def _read(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def test_a_checkpoint_of_another_format_is_ignored(tmp_path):
    path = _saved(tmp_path, _state())
    tensors, meta = _read(path)
    _rewrite(path, tensors, {**meta, "format": "vwbench.train-state/2"})
    assert load_train_state(path, "key", SHAPE, total_steps=5) is None


def test_a_checkpoint_missing_a_tensor_is_ignored_not_an_error(tmp_path):
    path = _saved(tmp_path, _state())
    tensors, meta = _read(path)
    del tensors["word_losses"]  # e.g. written by an older vwbench under this format's name
    _rewrite(path, tensors, meta)
    assert load_train_state(path, "key", SHAPE, total_steps=5) is None
