"""In-process checks of the pieces the crash tests rely on: the training checkpoint (resuming is
bit-exact, a damaged checkpoint is ignored), the lock helpers and the saved-files journal."""

from __future__ import annotations

import threading

import pytest
import torch

from tests.training.test_trainer import QuadraticModel
from vwbench.models.base import TrainingData, per_word_generators
from vwbench.results import journal
from vwbench.results.locks import compute_once, exclusive, lock_path
from vwbench.training import TrainConfig, train_words
from vwbench.training.state import TrainState, load_train_state, save_train_state


class NoisyModel(QuadraticModel):
    """Consumes the batch generator like the real adapters, so resuming must restore its state."""

    def loss(self, vectors, word_concepts, prepared, generators, batch_size=8):
        gens = per_word_generators(generators, vectors.shape[0])
        noise = torch.stack([torch.randn(vectors.shape[1:], generator=g) for g in gens]) * 0.1
        return super().loss(vectors + noise, word_concepts, prepared, generators, batch_size)


def _setup():
    torch.manual_seed(0)
    model = NoisyModel(torch.randn(3, 5))
    return model, torch.randn(6, 2, 5), [0, 1, 2, 0, 1, 2], TrainingData([], ["a", "b", "c"]), TrainConfig(steps=12, lr=0.05, seed=4)


def test_resuming_from_any_checkpoint_is_bit_exact(tmp_path):
    model, init, concepts, data, config = _setup()
    saved: list[TrainState] = []
    straight = train_words(model, data, init, concepts, config, checkpoint=saved.append, checkpoint_every=1)
    assert [s.step for s in saved] == list(range(1, 12))
    for state in saved:
        path = tmp_path / f"s{state.step}.trainstate"
        save_train_state(path, state, "key")
        back = load_train_state(path, "key", tuple(init.shape), config.steps)
        assert back is not None and back.step == state.step
        resumed = train_words(model, data, init, concepts, config, resume=back)
        assert torch.equal(resumed.vectors, straight.vectors)
        assert resumed.loss_curve == straight.loss_curve
        assert torch.equal(resumed.word_losses, straight.word_losses)
    # each word's losses: one row per step, whose mean is the curve
    assert straight.word_losses.shape == (12, 6)
    assert straight.word_losses.mean(dim=1).tolist() == pytest.approx(straight.loss_curve, rel=1e-6)


def test_a_checkpoint_that_is_not_this_trainings_is_ignored(tmp_path):
    model, init, concepts, data, config = _setup()
    saved: list[TrainState] = []
    train_words(model, data, init, concepts, config, checkpoint=saved.append, checkpoint_every=5)
    path = tmp_path / "s.trainstate"
    save_train_state(path, saved[0], "key")
    assert load_train_state(path, "other-key", tuple(init.shape), config.steps) is None
    assert load_train_state(path, "key", (7, 2, 5), config.steps) is None
    assert load_train_state(path, "key", tuple(init.shape), 3) is None  # more steps done than asked for
    data_bytes = path.read_bytes()
    path.write_bytes(data_bytes[: len(data_bytes) - 10])
    assert load_train_state(path, "key", tuple(init.shape), config.steps) is None
    assert load_train_state(tmp_path / "missing", "key", tuple(init.shape), config.steps) is None


def test_compute_once_computes_once_across_threads(tmp_path):
    """Threads stand in for processes here (the locks are not thread-local); the process tests
    are in test_concurrency.py."""
    store: dict[str, int] = {}
    calls: list[int] = []
    entered = threading.Event()

    def compute() -> int:
        calls.append(1)
        entered.set()
        threading.Event().wait(0.3)
        store["v"] = 42
        return 42

    results: list[tuple[int, bool]] = []

    def worker() -> None:
        results.append(compute_once(tmp_path, "unit-a", load=lambda: store.get("v"), compute=compute, what="unit a"))

    first = threading.Thread(target=worker)
    first.start()
    entered.wait(5)
    second = threading.Thread(target=worker)
    second.start()
    first.join()
    second.join()
    assert len(calls) == 1 and sorted(results) == [(42, False), (42, True)]


def test_lock_names_are_file_safe_and_distinct(tmp_path):
    a, b = lock_path(tmp_path, "result-sd->owlv2/x"), lock_path(tmp_path, "result-sd->owlv2_x")
    assert a != b and a.parent == b.parent == tmp_path / ".locks"
    assert "/" not in a.name and ">" not in a.name
    with exclusive(tmp_path, "result-abc", what="abc") as path:
        assert path.exists()


def test_journal_summary_lists_what_was_saved(tmp_path):
    journal.reset()
    assert journal.summary() == "nothing was saved yet"
    journal.record(tmp_path / "w.trainstate", "training checkpoint (step 3 of 6)")
    journal.record(tmp_path / "w.safetensors", "trained words")
    journal.forget(tmp_path / "w.trainstate")
    line = journal.summary()
    assert "trained words" in line and "trainstate" not in line and "\n" not in line
    journal.reset()


def test_journal_summary_tells_reused_files_from_saved_ones(tmp_path):
    """Words or a result an earlier run wrote are kept too, but this run did not save them."""
    journal.reset()
    try:
        journal.record(tmp_path / "w.safetensors", "trained words", reused=True)
        assert journal.summary() == f"reused trained words: {tmp_path / 'w.safetensors'}; run the same command again to resume from there"
        journal.record(tmp_path / "r.json", "result")
        journal.record(tmp_path / "s.json", "result", reused=True)
        assert journal.summary() == (
            f"saved result: {tmp_path / 'r.json'}; reused trained words: {tmp_path / 'w.safetensors'}; result: {tmp_path / 's.json'}; "
            "run the same command again to resume from there"
        )
        journal.record(tmp_path / "w.safetensors", "trained words")  # written again by this run
        journal.forget(tmp_path / "s.json")
        assert journal.summary().startswith(f"saved result: {tmp_path / 'r.json'}; trained words: {tmp_path / 'w.safetensors'}; run")
    finally:
        journal.reset()


def test_a_file_saved_by_this_command_stays_saved_when_a_later_task_reuses_it(tmp_path):
    """delta-sweep, check and a sweep of tasks sharing words save words in one task and reuse
    them in the next: they are this command's, not an earlier run's."""
    journal.reset()
    try:
        journal.record(tmp_path / "w.safetensors", "trained words")
        journal.record(tmp_path / "w.safetensors", "trained words", reused=True)
        assert journal.summary().startswith(f"saved trained words: {tmp_path / 'w.safetensors'}; run")
    finally:
        journal.reset()
