"""A causal text tower run from a word prompt's cached prefix.

In "a photo of <word>" the positions before the word (start token, "a photo of") are the same for
every word, and a causal tower never lets them see what follows: their keys and values at every
block are constants of the frozen model. They are computed once per prompt (:func:`prefix_state`);
a training step then runs the blocks only on the word's positions and the ones after it, and the
last block only at the pooled (end-of-text) position (:func:`run_suffix`). For "a photo of" and a
4-vector word that is 5 of the prompt's 9 positions, and 1 in the last block.

Only open_clip's default ``ResidualAttentionBlock`` (``nn.MultiheadAttention`` with one packed
input projection, no extra key/value biases) is handled; :func:`supports` says whether a tower
qualifies, and callers run the whole prompt otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn


@dataclass(frozen=True)
class PrefixState:
    """Per block, the prefix's attention keys and values ``[1, heads, P, head_dim]``."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2]) if self.keys else 0


def supports(transformer: nn.Module) -> bool:
    """Whether every block of an open_clip ``Transformer`` is one :func:`run_suffix` reproduces."""
    blocks = getattr(transformer, "resblocks", None)
    if not blocks or not getattr(transformer, "batch_first", False):
        return False
    for block in blocks:
        attn = getattr(block, "attn", None)
        if type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv"):
            return False
        if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim:
            return False
        if attn.bias_k is not None or attn.add_zero_attn or not attn.batch_first:
            return False
    return True


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, width = x.shape
    return x.view(b, n, heads, width // heads).transpose(1, 2)


def _qkv(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return _heads(q, attn.num_heads), _heads(k, attn.num_heads), _heads(v, attn.num_heads)


def _finish_block(block: nn.Module, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    b, heads, n, head_dim = attended.shape
    merged = attended.transpose(1, 2).reshape(b, n, heads * head_dim)
    x = x + block.ls_1(block.attn.out_proj(merged))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def prefix_state(transformer: nn.Module, prefix: torch.Tensor) -> PrefixState:
    """Keys and values of the prefix's input states ``[1, P, width]`` (token + position
    embeddings) at every block, without gradients."""
    keys, values = [], []
    with torch.no_grad():
        x = prefix
        for block in transformer.resblocks:
            q, k, v = _qkv(block, x)
            keys.append(k)
            values.append(v)
            x = _finish_block(block, x, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    return PrefixState(tuple(keys), tuple(values))


def run_suffix(transformer: nn.Module, suffix: torch.Tensor, state: PrefixState, pooled: int) -> torch.Tensor:
    """The tower's output ``[B, width]`` at suffix row ``pooled`` (the end-of-text position minus
    the prefix length), from the suffix's input states ``[B, S, width]`` after the cached prefix."""
    x = suffix
    batch, length = x.shape[0], x.shape[1]
    prefix = state.length
    # query i (absolute position prefix + i) sees every key up to prefix + i
    visible = torch.ones(length, prefix + length, dtype=torch.bool, device=x.device).tril(prefix)
    blocks = list(transformer.resblocks)
    for index, block in enumerate(blocks):
        q, k, v = _qkv(block, x)
        k = torch.cat([state.keys[index].expand(batch, -1, -1, -1), k], dim=2)
        v = torch.cat([state.values[index].expand(batch, -1, -1, -1), v], dim=2)
        mask = visible
        if index == len(blocks) - 1:  # only the pooled row leaves the tower
            q, x, mask = q[:, :, pooled : pooled + 1], x[:, pooled : pooled + 1], visible[pooled : pooled + 1]
        x = _finish_block(block, x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    return x[:, -1]
