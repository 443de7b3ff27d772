"""Train many concept words at once on a frozen model.

All words (concepts x trials) live in one tensor ``vectors[W, n_vectors, dim]`` and one Adam
optimizer. The adapter's loss returns one value per word and each value depends only on its own
word's vectors, and Adam's update is elementwise, so training W words together follows the same
trajectory as training each alone on the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from vwbench.models.base import ConceptModel, TrainingData


@dataclass(frozen=True)
class TrainConfig:
    """Table 2 of the paper by default."""

    steps: int = 1000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 8
    seed: int = 0


@dataclass
class TrainedWords:
    vectors: torch.Tensor  # [W, n, dim] float32 cpu
    loss_curve: list[float] = field(default_factory=list)  # mean loss over words, per step


def project_to_ball(vectors: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Project each word vector onto the ball ``||v - center|| <= radius`` (per word).

    vectors: [W, n, d]; centers: [W, d] (the anchor word's embedding); radii: [W].
    """
    offset = vectors - centers[:, None, :]
    norms = offset.norm(dim=-1, keepdim=True)
    scale = torch.clamp(radii[:, None, None] / norms.clamp(min=1e-12), max=1.0)
    return centers[:, None, :] + offset * scale


def train_words(
    model: ConceptModel,
    data: TrainingData,
    init: torch.Tensor,
    word_concepts: Sequence[int],
    config: TrainConfig,
    *,
    ball: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> TrainedWords:
    """Optimise ``init[W, n, dim]`` so that word ``w`` solves the model's task for concept
    ``word_concepts[w]``. ``ball = (centers [W, dim], radii [W])`` constrains every step to the
    anchor's neighbourhood by projected gradient descent (the fracturing experiment)."""
    prepared = model.prepare(data)
    vectors = init.detach().to(torch.float32).clone().to(model.device)
    if ball is not None:
        centers, radii = (t.to(model.device, torch.float32) for t in ball)
        vectors = project_to_ball(vectors, centers, radii)
    vectors.requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=config.lr, betas=config.betas, eps=config.eps)
    generator = torch.Generator().manual_seed(config.seed)
    curve: list[float] = []
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        losses = model.loss(vectors, word_concepts, prepared, generator, config.batch_size)
        losses.sum().backward()
        optimizer.step()
        if ball is not None:
            with torch.no_grad():
                vectors.copy_(project_to_ball(vectors, centers, radii))
        mean_loss = float(losses.detach().mean())
        curve.append(mean_loss)
        if progress is not None:
            progress(1, mean_loss)
    return TrainedWords(vectors.detach().to("cpu", torch.float32), curve)
