"""The random-map baseline (the floor): a fixed random linear map, fitted only in scale.

``T`` has i.i.d. standard normal entries drawn from ``seed``. A vector maps to
``(y - μ_Y) T c + μ_X``, where ``μ`` are the shared rows' means and ``c`` makes the mapped shared
rows' root-mean-square norm (about ``μ_X``) equal the target rows'. Outputs therefore look like
target embeddings in location and size but carry no information about the word.
"""

from __future__ import annotations

from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, shared_rows


class RandomTransfer(TransferMethod):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.T: torch.Tensor | None = None
        self.source_mean: torch.Tensor | None = None
        self.target_mean: torch.Tensor | None = None

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, _ = shared_rows(source_vocab, target_vocab, min_shared=2)
        Y, X = Y.detach().to("cpu", torch.float64), X.detach().to("cpu", torch.float64)
        if not (torch.isfinite(Y).all() and torch.isfinite(X).all()):
            raise ValueError("vocabulary matrices contain non-finite values; cannot fit a transfer")
        g = torch.Generator().manual_seed(self.seed)
        T = torch.randn(Y.shape[1], X.shape[1], generator=g, dtype=torch.float64)
        self.source_mean, self.target_mean = Y.mean(0), X.mean(0)
        mapped_rms = (Y - self.source_mean) @ T
        mapped_rms = float(mapped_rms.pow(2).sum(1).mean().sqrt())
        target_rms = float((X - self.target_mean).pow(2).sum(1).mean().sqrt())
        self.T = T * (target_rms / mapped_rms if mapped_rms > 0 else 0.0)

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        assert self.T is not None
        y = vectors.detach().to("cpu", torch.float64)
        out = (y - self.source_mean) @ self.T + self.target_mean
        return out.to(vectors.device, vectors.dtype)

    def _describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "distribution": "standard normal, rescaled to the target rows' RMS norm"}
