"""The identity transfer, for in-domain evaluation (a word used in the model it was trained on)."""

from __future__ import annotations

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, _dim


class IdentityTransfer(TransferMethod):
    """``x -> x``. ``fit`` only checks that both embedding spaces have the same dimension;
    ``map`` returns a copy, so callers may modify the result freely."""

    name = "identity"

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        ds, dt = _dim(source_vocab), _dim(target_vocab)
        if ds != dt:
            raise ValueError(
                f"identity transfer needs equal embedding dims, got source {ds} and target {dt} "
                "(use a fitted transfer such as 'lstsq' between different models)"
            )

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors.clone()
