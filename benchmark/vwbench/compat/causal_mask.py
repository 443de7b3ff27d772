"""transformers' ``create_causal_mask`` for a text tower run from its input embeddings.

The cache argument was renamed from ``past_key_values`` to ``cache`` within transformers 5 (the old
name warns from 5.2x and goes in 5.40); the word-prompt paths pass none, under whichever name the
installed version takes.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers.masking_utils import create_causal_mask

_CACHE_ARGUMENT = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def causal_mask(config: Any, hidden: torch.Tensor) -> Any:
    """The mask a CLIP-style text model passes its encoder for unpadded ``hidden`` ``[B, L, d]``
    (``None`` under SDPA, where causality comes from ``is_causal=True``)."""
    return create_causal_mask(config=config, inputs_embeds=hidden, attention_mask=None, **{_CACHE_ARGUMENT: None})


def run_causal_text_tower(text: Any, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """Final hidden states ``[B, L, d]`` of a transformers CLIP-style text tower (``embeddings``,
    ``encoder``, ``final_layer_norm``: CLIP's and OWLv2's) run on token embeddings ``[B, L, d]``.

    Mirrors the tower's ``forward`` after its token lookup. The causal mask must be passed as the
    model passes it: with SDPA ``create_causal_mask`` returns ``None`` and causality then comes
    only from ``is_causal=True`` (the attention modules' ``is_causal`` is False), so dropping
    either would silently make the encoder bidirectional."""
    hidden = text.embeddings(inputs_embeds=inputs_embeds)  # adds the position embeddings
    out = text.encoder(inputs_embeds=hidden, attention_mask=causal_mask(text.config, hidden), is_causal=True)
    return text.final_layer_norm(out.last_hidden_state)
