"""Train many concept words at once on a frozen model.

All words (concepts x trials) live in one tensor ``vectors[W, n_vectors, dim]`` and one Adam
optimizer. The adapter's loss returns one value per word and each value depends only on its own
word's vectors, Adam's update is elementwise, and each word draws its batches from its own random
generator (seeded by the run's seed and the word's key), so training W words together follows the
same trajectory as training each alone, up to float rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from vwbench import faults
from vwbench.interrupts import deferred_interrupt
from vwbench.models.base import ConceptModel, TrainingData
from vwbench.training.state import TrainState


@dataclass(frozen=True)
class TrainConfig:
    """Table 2 of the paper by default."""

    steps: int = 1000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 8
    seed: int = 0
    # Words per forward/backward pass (their gradients add up into one Adam step, so the result is
    # the same for any value). None: on a GPU as many as fit; on a CPU what the model asks for
    # (ConceptModel.cpu_words_per_pass: every word in one pass unless its step is heavy).
    words_per_pass: int | None = None


@dataclass
class TrainedWords:
    vectors: torch.Tensor  # [W, n, dim] float32 cpu
    loss_curve: list[float] = field(default_factory=list)  # mean loss over words, per step
    word_losses: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))  # [steps, W] each word's loss


def project_to_ball(vectors: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Project each word vector onto the ball ``||v - center|| <= radius`` (per word).

    vectors: [W, n, d]; centers: [W, d] (the anchor word's embedding); radii: [W].
    """
    offset = vectors - centers[:, None, :]
    norms = offset.norm(dim=-1, keepdim=True)
    scale = torch.clamp(radii[:, None, None] / norms.clamp(min=1e-12), max=1.0)
    return centers[:, None, :] + offset * scale


def word_seed(seed: int, key: str) -> int:
    """The random seed of the word ``key`` (e.g. ``"dog/2"``: concept and trial) in a run seeded
    with ``seed``: independent of which other words are trained with it."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def word_passes(n_words: int, per_pass: int) -> list[slice]:
    """The words of each forward/backward pass: consecutive runs of at most ``per_pass`` words."""
    per_pass = max(1, min(per_pass, n_words))
    return [slice(start, min(start + per_pass, n_words)) for start in range(0, n_words, per_pass)]


def step_in_passes(
    model: ConceptModel, vectors: torch.Tensor, word_concepts: Sequence[int], prepared, generators: list[torch.Generator],
    batch_size: int, passes: list[slice],
) -> torch.Tensor:
    """One step's forward/backward, pass by pass: each pass's gradient adds up in ``vectors.grad``.
    Returns the per-word losses ``[W]`` (detached)."""
    parts = []
    for words in passes:
        part = model.loss(vectors[words], word_concepts[words], prepared, generators[words], batch_size)
        part.sum().backward()
        parts.append(part.detach())
    return torch.cat(parts)


PASS_MEMORY_SHARE = 0.8  # of the GPU memory free for a pass; the rest is headroom for fragmentation


def words_for_memory(free_bytes: int, bytes_per_word: int, n_words: int) -> int:
    """How many words a pass carries when each takes ``bytes_per_word`` and ``free_bytes`` are
    free (at least 1, at most ``n_words``)."""
    fit = int(free_bytes * PASS_MEMORY_SHARE) // max(int(bytes_per_word), 1)
    return max(1, min(n_words, fit))


def words_per_cpu_pass(model: ConceptModel, n_words: int, batch_size: int) -> int:
    """Words per pass on a CPU: what ``model`` asks for, at most ``n_words``, at least one."""
    return max(1, min(n_words, model.cpu_words_per_pass(batch_size) or n_words))


def words_that_fit_a_pass(
    model: ConceptModel, vectors: torch.Tensor, word_concepts: Sequence[int], prepared, generators: list[torch.Generator], batch_size: int
) -> int:
    """Words per pass: on a CPU what the model asks for (:meth:`ConceptModel.cpu_words_per_pass`,
    all of them by default); on a GPU as many as its free memory holds, measured by one probe
    pass of the first word (whose gradient is dropped and whose random stream is put back, so
    training is unchanged). SD 2.1 at 768 px takes about 12 GB per word of 8 images, so its 100
    words of a run cannot share one pass."""
    n_words = int(vectors.shape[0])
    if model.device.type != "cuda":
        return words_per_cpu_pass(model, n_words, batch_size)
    if n_words <= 1:
        return n_words
    device = model.device
    state = generators[0].get_state()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model.loss(vectors[:1], word_concepts[:1], prepared, generators[:1], batch_size).sum().backward()
    torch.cuda.synchronize(device)
    bytes_per_word = torch.cuda.max_memory_allocated(device) - before
    vectors.grad = None
    generators[0].set_state(state)
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return words_for_memory(free + cached, bytes_per_word, n_words)


def word_generators(seed: int, keys: Sequence[str]) -> list[torch.Generator]:
    """One CPU generator per word, seeded by :func:`word_seed`. Words may share a key when they
    are the same word of different runs (the deltas of a fracturing sweep): each still gets its
    own generator, which draws what that word draws in its own run."""
    return [torch.Generator().manual_seed(word_seed(seed, k)) for k in keys]


def train_words(
    model: ConceptModel,
    data: TrainingData,
    init: torch.Tensor,
    word_concepts: Sequence[int],
    config: TrainConfig,
    *,
    ball: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: Callable[[int, float], None] | None = None,
    resume: TrainState | None = None,
    checkpoint: Callable[[TrainState], None] | None = None,
    checkpoint_every: int = 0,
    word_keys: Sequence[str] | None = None,
) -> TrainedWords:
    """Optimise ``init[W, n, dim]`` so that word ``w`` solves the model's task for concept
    ``word_concepts[w]``. ``ball = (centers [W, dim], radii [W])`` constrains every step to the
    anchor's neighbourhood by projected gradient descent (the fracturing experiment).

    ``checkpoint`` is called with the trainer's state every ``checkpoint_every`` steps and when
    Ctrl-C is pressed (then training stops with :class:`KeyboardInterrupt` after saving);
    ``resume`` continues from such a state with the same arithmetic as an uninterrupted run.

    ``word_keys`` name the words (default: their positions); word ``w`` draws its batches from a
    generator seeded by ``(config.seed, word_keys[w])``, so the same word trains the same alone or
    in any batch."""
    _check_training(config, init, word_concepts, len(data.concepts) if hasattr(data, "concepts") else None)
    # gradients are on whatever the caller's mode (a notebook's `with torch.no_grad():`)
    with torch.inference_mode(False), torch.enable_grad():
        try:
            return _train(model, data, init, word_concepts, config, ball, progress, resume, checkpoint, checkpoint_every, word_keys)
        except RuntimeError as exc:
            if "Inference tensors" not in str(exc):
                raise
            raise ValueError("the model was loaded inside torch.inference_mode(), so no gradient can pass through it: "
                             "load it outside (torch.no_grad() around the loading is fine)") from exc


def _check_training(config: TrainConfig, init: torch.Tensor, word_concepts: Sequence[int], n_concepts: int | None) -> None:
    """Settings no training can use are a ``ValueError`` naming them, not a NaN loss or a silent no-op."""
    if config.steps < 0:
        raise ValueError(f"steps must be >= 0, not {config.steps}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {config.batch_size}")
    if config.words_per_pass is not None and config.words_per_pass < 1:
        raise ValueError(f"words_per_pass must be >= 1 (or None), not {config.words_per_pass}")
    if init.ndim != 3:
        raise ValueError(f"init must be [words, vectors, dim], not of shape {tuple(init.shape)}")
    if len(word_concepts) != init.shape[0]:
        raise ValueError(f"{init.shape[0]} words but {len(word_concepts)} word concepts")
    negative = [c for c in word_concepts if int(c) < 0]
    if negative:
        raise ValueError(f"word concept index {negative[0]} is negative")
    if n_concepts is not None:
        beyond = [c for c in word_concepts if int(c) >= n_concepts]
        if beyond:
            what = f"one of the data's {n_concepts} concepts (0..{n_concepts - 1})" if n_concepts else "a concept: the data has none"
            raise ValueError(f"word concept index {beyond[0]} is not {what}")


def _train(model, data, init, word_concepts, config, ball, progress, resume, checkpoint, checkpoint_every, word_keys) -> TrainedWords:
    prepared = model.prepare(data)
    vectors = init.detach().to(torch.float32).clone().to(model.device)
    if ball is not None:
        centers, radii = (t.to(model.device, torch.float32) for t in ball)
        vectors = project_to_ball(vectors, centers, radii)
    if resume is not None:
        vectors = resume.vectors.to(model.device, torch.float32).clone()
    vectors.requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=config.lr, betas=config.betas, eps=config.eps)
    keys = [str(w) for w in range(init.shape[0])] if word_keys is None else list(word_keys)
    if len(keys) != init.shape[0]:
        raise ValueError(f"{init.shape[0]} words but {len(keys)} word keys")
    generators = word_generators(config.seed, keys)
    curve: list[float] = []
    word_losses: list[torch.Tensor] = []  # one [W] row per step
    first = 0
    if resume is not None:
        moments = {"step": resume.adam_step.clone(), "exp_avg": resume.exp_avg.clone(), "exp_avg_sq": resume.exp_avg_sq.clone()}
        optimizer.load_state_dict({"state": {0: moments}, "param_groups": optimizer.state_dict()["param_groups"]})
        for generator, state in zip(generators, resume.generators):
            generator.set_state(state.clone())
        curve, first = list(resume.loss_curve), resume.step
        word_losses = list(resume.word_losses.to(torch.float32).unbind(0))
        if progress is not None and first:
            progress(first, curve[-1])

    def snapshot(step: int) -> TrainState:
        moments = optimizer.state[vectors]
        return TrainState(
            step=step,
            vectors=vectors.detach().to("cpu", torch.float32).clone(),
            exp_avg=moments["exp_avg"].detach().to("cpu", torch.float32).clone(),
            exp_avg_sq=moments["exp_avg_sq"].detach().to("cpu", torch.float32).clone(),
            adam_step=torch.as_tensor(moments["step"]).detach().to("cpu", torch.float32).clone(),
            generators=torch.stack([g.get_state() for g in generators]),
            loss_curve=list(curve),
            word_losses=_stack_rows(word_losses, len(keys)),
        )

    n_words = int(vectors.shape[0])
    per_pass = config.words_per_pass or (
        words_that_fit_a_pass(model, vectors, word_concepts, prepared, generators, config.batch_size) if first < config.steps else n_words
    )
    passes = word_passes(n_words, per_pass)
    with deferred_interrupt(enabled=checkpoint is not None) as interrupt:
        for step in range(first, config.steps):
            optimizer.zero_grad(set_to_none=True)
            losses = step_in_passes(model, vectors, word_concepts, prepared, generators, config.batch_size, passes)
            optimizer.step()
            if ball is not None:
                with torch.no_grad():
                    vectors.copy_(project_to_ball(vectors, centers, radii))
            mean_loss = float(losses.detach().mean())
            curve.append(mean_loss)
            word_losses.append(losses.detach().to("cpu", torch.float32))
            if progress is not None:
                progress(1, mean_loss)
            faults.point("train-step")
            done = step + 1
            due = checkpoint_every > 0 and done % checkpoint_every == 0 and done < config.steps
            if checkpoint is not None and (due or interrupt.requested):
                checkpoint(snapshot(done))
                faults.point("train-checkpoint")
            if interrupt.requested:
                raise KeyboardInterrupt
    return TrainedWords(vectors.detach().to("cpu", torch.float32), curve, _stack_rows(word_losses, n_words))


def _stack_rows(rows: list[torch.Tensor], n_words: int) -> torch.Tensor:
    """Per-step loss rows ``[W]`` as one ``[steps, W]`` tensor (``[0, W]`` before the first step)."""
    return torch.stack(rows) if rows else torch.empty(0, n_words)
