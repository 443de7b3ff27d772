"""The anchor baseline: the concept's init word itself in the target model, untrained.

It ignores the trained vectors. Each word becomes ``n_vectors`` copies of the target model's
input embedding of its concept's init word, exactly what training would have started from on the
target: what a user gets with no training at all. For common classes the init word is the class
name, so this can be a strong baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, _dim

_END_OF_WORD = "</w>"  # CLIP BPE marks a whole word's token with this suffix


class AnchorTransfer(TransferMethod):
    """Replaces every word by its concept's init word embedded by the target model."""

    name = "anchor"
    uses_init_words = True

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, int] = {}
        self._matrix: torch.Tensor | None = None

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        _dim(source_vocab)
        _dim(target_vocab)
        self._rows = {t: i for i, t in enumerate(target_vocab.tokens)}
        self._matrix = target_vocab.matrix.detach().to("cpu", torch.float32)

    def target_row(self, word: str) -> torch.Tensor:
        """The target embedding of a whole word (``word</w>`` in CLIP BPE, or the token itself)."""
        assert self._matrix is not None
        for token in (word + _END_OF_WORD, word):
            if token in self._rows:
                return self._matrix[self._rows[token]]
        raise ValueError(f"anchor: the init word {word!r} is not a single token of the target vocabulary")

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        # a user meets this where vectors have no init word (a study's image features); callers with words use map_words
        raise ValueError("the anchor transfer maps each word to its concept's init word, and these vectors have none "
                         "(image features?); choose lstsq, ridge, procrustes, knn, random or a submitted map")

    def _map_words(self, vectors: torch.Tensor, init_words: Sequence[str]) -> torch.Tensor:
        if vectors.ndim < 2 or len(init_words) != vectors.shape[0]:
            raise ValueError(f"anchor: {len(init_words)} init words for word tensor {tuple(vectors.shape)}")
        rows = torch.stack([self.target_row(w) for w in init_words])  # [W, dt]
        out = rows.reshape(rows.shape[0], *([1] * (vectors.ndim - 2)), rows.shape[1])
        out = out.expand(*vectors.shape[:-1], rows.shape[1])
        return out.to(vectors.device, vectors.dtype).contiguous()

    def _describe(self) -> dict[str, Any]:
        return {"uses": "the concept's init word in the target vocabulary", "trained_vectors_used": False}
