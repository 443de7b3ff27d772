"""Training checkpoints: everything needed to continue a word training exactly where it stopped.

A :class:`TrainState` holds the word vectors, Adam's moments and step count, each word's
random-generator state and the loss curves (the mean and each word's) after ``step`` steps. Continuing from it follows the
same arithmetic as never stopping, so a run killed during training and started again gives the
same words, bit for bit (on CPU).

On disk it is one safetensors file whose metadata carries the run's cache key, the step and a
checksum; a file that is torn, foreign, for other words or altered is ignored (training starts
over), never half-used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from vwbench.results.atomic import atomic_write_bytes
from vwbench.results.words_store import tensor_checksum

STATE_FORMAT = "vwbench.train-state/3"  # /2: one generator state per word; /3: each word's losses


@dataclass
class TrainState:
    """The trainer after ``step`` optimizer steps (all tensors on the CPU)."""

    step: int
    vectors: torch.Tensor  # [W, n, dim] float32
    exp_avg: torch.Tensor  # Adam's first moment, same shape
    exp_avg_sq: torch.Tensor  # Adam's second moment, same shape
    adam_step: torch.Tensor  # Adam's step counter (a 0-d float tensor)
    generators: torch.Tensor  # [W, S] uint8: each word's torch.Generator.get_state()
    loss_curve: list[float] = field(default_factory=list)
    word_losses: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))  # [step, W] float32


def save_train_state(path: Path, state: TrainState, key: str) -> None:
    tensors = {
        "vectors": state.vectors.contiguous(),
        "exp_avg": state.exp_avg.contiguous(),
        "exp_avg_sq": state.exp_avg_sq.contiguous(),
        "adam_step": state.adam_step.reshape(1).contiguous(),
        "generators": state.generators.contiguous(),
        "loss_curve": torch.tensor(state.loss_curve, dtype=torch.float64),
        "word_losses": state.word_losses.to(torch.float32).contiguous(),
    }
    meta = {"format": STATE_FORMAT, "key": key, "step": str(state.step)}
    meta["checksum"] = tensor_checksum(tensors, meta)
    atomic_write_bytes(path, save(tensors, metadata=meta), phase="train-state")


def load_train_state(path: Path, key: str, shape: tuple[int, ...], total_steps: int) -> TrainState | None:
    """The checkpoint at ``path`` if it is intact and belongs to the training ``key`` of words of
    ``shape`` with ``total_steps`` steps; otherwise ``None``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != STATE_FORMAT or meta.get("key") != key:
            return None
        tensors = load_file(str(path))
        if meta.get("checksum") != tensor_checksum(tensors, meta):
            return None
        step = int(meta["step"])
        curve = tensors["loss_curve"].tolist()
        state = TrainState(
            step=step,
            vectors=tensors["vectors"],
            exp_avg=tensors["exp_avg"],
            exp_avg_sq=tensors["exp_avg_sq"],
            adam_step=tensors["adam_step"].reshape(()),
            generators=tensors["generators"],
            loss_curve=[float(x) for x in curve],
            word_losses=tensors["word_losses"],
        )
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError):
        return None
    shapes_ok = all(tuple(t.shape) == tuple(shape) for t in (state.vectors, state.exp_avg, state.exp_avg_sq))
    shapes_ok = shapes_ok and state.generators.ndim == 2 and state.generators.shape[0] == shape[0]
    shapes_ok = shapes_ok and tuple(state.word_losses.shape) == (step, shape[0])
    if not shapes_ok or not 0 < step <= total_steps or len(state.loss_curve) != step:
        return None
    return state
