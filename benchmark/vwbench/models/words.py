"""Splicing trainable word vectors into a frozen text encoder's input, for every family.

The prompt "a photo of {}" is tokenized around the placeholder; ``n_vectors`` placeholder
positions are reserved, and at run time the token embeddings there are replaced by the word's
vectors. The end-of-text position is known from construction, so pooling never relies on
``argmax(input_ids)`` (which would pick the new word if its id were the highest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vwbench.models.base import PROMPT_TEMPLATE

Encode = Callable[[str], list[int]]  # text -> token ids, without start/end tokens


@dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    context_length: int


@dataclass(frozen=True)
class WordPrompt:
    """Token ids of a prompt with reserved word positions (filled with a placeholder id)."""

    input_ids: torch.Tensor  # [L] long
    word_positions: torch.Tensor  # [n_vectors] long
    eos_position: int


def _finish(ids: list[int], special: SpecialIds) -> tuple[torch.Tensor, int]:
    ids = [special.bos] + ids
    if len(ids) + 1 > special.context_length:
        raise ValueError(f"prompt of {len(ids) + 1} tokens exceeds context length {special.context_length}")
    eos_position = len(ids)
    ids = ids + [special.eos]
    ids = ids + [special.pad] * (special.context_length - len(ids))
    return torch.tensor(ids, dtype=torch.long), eos_position


def build_word_prompt(
    encode: Encode, special: SpecialIds, n_vectors: int, template: str = PROMPT_TEMPLATE
) -> WordPrompt:
    """Token ids for ``template`` with ``n_vectors`` word slots where ``{}`` stands."""
    if template.count("{}") != 1:
        raise ValueError(f"prompt template must contain exactly one '{{}}': {template!r}")
    prefix, suffix = template.split("{}")
    pre = encode(prefix) if prefix.strip() else []
    post = encode(suffix) if suffix.strip() else []
    # The placeholder id is irrelevant (those rows are replaced); use the start token, which no
    # pooling rule looks for.
    body = pre + [special.bos] * n_vectors + post
    ids, eos_position = _finish(body, special)
    start = 1 + len(pre)
    return WordPrompt(ids, torch.arange(start, start + n_vectors), eos_position)


def build_text_prompts(
    encode: Encode, special: SpecialIds, texts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[N, L]`` and end-of-text positions ``[N]`` of ordinary prompts."""
    rows, positions = [], []
    for text in texts:
        ids, eos_position = _finish(encode(text), special)
        rows.append(ids)
        positions.append(eos_position)
    return torch.stack(rows), torch.tensor(positions, dtype=torch.long)


def splice(embeds: torch.Tensor, positions: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Replace ``embeds[b, positions[j]]`` by ``vectors[b, j]`` (differentiable in ``vectors``).

    embeds: [B, L, d]; positions: [n]; vectors: [B, n, d] (or [n, d], broadcast over B).
    """
    if vectors.ndim == 2:
        vectors = vectors.unsqueeze(0).expand(embeds.shape[0], -1, -1)
    mask = torch.zeros(embeds.shape[1], dtype=torch.bool, device=embeds.device)
    mask[positions] = True
    scattered = torch.zeros_like(embeds)
    scattered[:, positions] = vectors.to(embeds.dtype)
    return torch.where(mask[None, :, None], scattered, embeds)


def pool_at(hidden: torch.Tensor, positions: torch.Tensor | int) -> torch.Tensor:
    """``hidden[b, positions[b]]`` for each row: [B, L, d] -> [B, d]."""
    if isinstance(positions, int):
        return hidden[:, positions]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), positions.to(hidden.device)]
