"""Training checkpoints (`<key>.trainstate`, README "Resume after kill -9"): a checkpoint is read
back exactly, and one that is torn, foreign, for other words, altered or from a longer run is
ignored (training starts over), never half-used. The kill-and-resume tests reach this code only
in child processes; these check the reader itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vwbench.training.state import STATE_FORMAT, TrainState, load_train_state, save_train_state

W, N, D, STEPS = 3, 2, 4, 10


def _state(step: int = 4) -> TrainState:
    g = torch.Generator().manual_seed(0)
    gens = torch.stack([torch.Generator().manual_seed(i).get_state() for i in range(W)])
    return TrainState(
        step=step,
        vectors=torch.randn(W, N, D, generator=g),
        exp_avg=torch.randn(W, N, D, generator=g),
        exp_avg_sq=torch.rand(W, N, D, generator=g),
        adam_step=torch.tensor(float(step)),
        generators=gens,
        loss_curve=[1.0 / (i + 1) for i in range(step)],
        word_losses=torch.rand(step, W, generator=g),
    )


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, TrainState]:
    state = _state()
    path = tmp_path / "abc.trainstate"
    save_train_state(path, state, "key-abc")
    return path, state


def test_a_checkpoint_reads_back_bit_for_bit(saved) -> None:
    path, state = saved
    back = load_train_state(path, "key-abc", (W, N, D), STEPS)
    assert back is not None and back.step == 4
    for name in ("vectors", "exp_avg", "exp_avg_sq", "generators", "word_losses"):
        assert torch.equal(getattr(back, name), getattr(state, name)), name
    assert back.adam_step.shape == () and float(back.adam_step) == 4.0
    assert back.loss_curve == state.loss_curve
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.trainstate"]  # no temporary file left


@pytest.mark.parametrize(
    ("key", "shape", "total_steps"),
    [
        ("key-other", (W, N, D), STEPS),  # another run's checkpoint
        ("key-abc", (W + 1, N, D), STEPS),  # for other words
        ("key-abc", (W, N, D + 1), STEPS),
        ("key-abc", (W, N, D), 3),  # ahead of this run's steps
    ],
)
def test_a_checkpoint_of_another_run_is_ignored(saved, key, shape, total_steps) -> None:
    path, _ = saved
    assert load_train_state(path, key, shape, total_steps) is None


def test_a_missing_or_torn_checkpoint_is_ignored(saved, tmp_path: Path) -> None:
    path, _ = saved
    assert load_train_state(tmp_path / "none.trainstate", "key-abc", (W, N, D), STEPS) is None
    torn = tmp_path / "torn.trainstate"
    torn.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert load_train_state(torn, "key-abc", (W, N, D), STEPS) is None
    (tmp_path / "folder.trainstate").mkdir()
    assert load_train_state(tmp_path / "folder.trainstate", "key-abc", (W, N, D), STEPS) is None


def test_an_altered_checkpoint_is_ignored(saved) -> None:
    """Changing one number (or the step) without the checksum is caught."""
    path, _ = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    tensors["vectors"][0, 0, 0] += 1.0
    save_file(tensors, str(path), metadata=meta)
    assert load_train_state(path, "key-abc", (W, N, D), STEPS) is None
    tensors["vectors"][0, 0, 0] -= 1.0
    save_file(tensors, str(path), metadata={**meta, "step": "5"})
    assert load_train_state(path, "key-abc", (W, N, D), STEPS) is None
    save_file(tensors, str(path), metadata=meta)  # restored exactly: read again
    assert load_train_state(path, "key-abc", (W, N, D), STEPS) is not None


def test_an_older_format_is_ignored(saved) -> None:
    path, _ = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    assert meta["format"] == STATE_FORMAT
    save_file(load_file(str(path)), str(path), metadata={**meta, "format": "vwbench.train-state/2"})
    assert load_train_state(path, "key-abc", (W, N, D), STEPS) is None


def test_a_loss_curve_that_does_not_match_the_step_is_ignored(tmp_path: Path) -> None:
    state = _state()
    state.loss_curve = state.loss_curve[:-1]  # a checksummed file whose curve misses a step
    path = tmp_path / "short.trainstate"
    save_train_state(path, state, "key-abc")
    assert load_train_state(path, "key-abc", (W, N, D), STEPS) is None
