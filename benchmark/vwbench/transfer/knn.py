"""Nearest-neighbour transfer: a softmax-weighted mix of the target vectors of the source vector's
nearest shared words.

For a source vector ``y``, the ``k`` shared tokens whose source rows have the highest cosine
similarity ``c_i`` to ``y`` are taken; the output is ``Σ_i w_i X_i`` with ``w = softmax(c /
temperature)`` over those ``k``. It needs no linear relation between the spaces, only that
neighbourhoods match.
"""

from __future__ import annotations

from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, shared_rows


class KnnTransfer(TransferMethod):
    """``k`` nearest shared words by cosine similarity, mixed by ``softmax(sim / temperature)``."""

    name = "knn"

    def __init__(self, k: int = 8, temperature: float = 0.05) -> None:
        super().__init__()
        if k < 1:
            raise ValueError("knn needs k >= 1")
        if temperature <= 0:
            raise ValueError("knn needs a temperature > 0")
        self.k, self.temperature = int(k), float(temperature)
        self.Y_unit: torch.Tensor | None = None
        self.X: torch.Tensor | None = None

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, _ = shared_rows(source_vocab, target_vocab, min_shared=self.k)
        Y, X = Y.detach().to("cpu", torch.float64), X.detach().to("cpu", torch.float64)
        if not (torch.isfinite(Y).all() and torch.isfinite(X).all()):
            raise ValueError("vocabulary matrices contain non-finite values; cannot fit a transfer")
        self.Y_unit = torch.nn.functional.normalize(Y, dim=1)
        self.X = X

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        assert self.Y_unit is not None and self.X is not None
        flat = vectors.detach().to("cpu", torch.float64).reshape(-1, vectors.shape[-1])
        sims = torch.nn.functional.normalize(flat, dim=1) @ self.Y_unit.T  # [m, n]
        top, idx = sims.topk(self.k, dim=1)
        weights = torch.softmax(top / self.temperature, dim=1)  # [m, k]
        out = torch.einsum("mk,mkd->md", weights, self.X[idx])
        return out.reshape(*vectors.shape[:-1], self.X.shape[1]).to(vectors.device, vectors.dtype)

    def _describe(self) -> dict[str, Any]:
        return {"k": self.k, "temperature": self.temperature, "similarity": "cosine"}
