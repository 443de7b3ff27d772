"""The identity transfer, for in-domain evaluation (a word used in the model it was trained on)."""

from __future__ import annotations

import torch

from vwbench.transfer.base import IncompatibleSpaces, TransferMethod, VocabularyLike


class IdentityTransfer(TransferMethod):
    """``x -> x``. ``fit`` only checks that both embedding spaces have the same dimension;
    ``map`` returns a copy, so callers may modify the result freely."""

    name = "identity"

    def check_spaces(self, source_dim: int, target_dim: int) -> None:
        if source_dim != target_dim:
            raise IncompatibleSpaces(
                f"identity transfer needs equal embedding dims, got source {source_dim} and target {target_dim} "
                "(use a fitted transfer such as 'lstsq' between different models)"
            )

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        pass  # check_spaces is the whole fit

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors.clone()
