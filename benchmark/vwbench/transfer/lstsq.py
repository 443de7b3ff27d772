"""Linear least-squares transfer (the paper's transfer function).

With ``Y [n, ds]`` the source model's input-embedding rows and ``X [n, dt]`` the target model's,
over the ``n`` tokens both vocabularies share,

    T = argmin_T ||Y T - X||_F = (YᵀY)⁻¹ Yᵀ X        (no bias),

and a source vector ``y`` maps to ``y @ T``. The normal equations are never formed: squaring the
condition number of ``Y`` loses half the float64 digits on real embedding tables. The solve is an
SVD-based least squares (LAPACK ``gelsd``) in float64, which also returns the minimum-norm
solution when ``Y`` is rank-deficient (near-collinear columns: singular values below ``rcond``
times the largest are treated as zero) instead of blowing up.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, apply_float64, shared_rows


class LeastSquaresTransfer(TransferMethod):
    """``mapped = y @ T`` with ``T`` the least-squares fit over the shared vocabulary rows.

    After ``fit``: ``T`` (float32 ``[ds, dt]``, for inspection and export) and ``T64`` (the
    float64 solution that ``map`` uses), plus fit diagnostics in ``describe()``.

    ``rcond``: relative cutoff for small singular values of ``Y``; ``None`` is LAPACK's default
    (float64 eps times ``max(n, ds)``).
    """

    name = "lstsq"

    def __init__(self, rcond: float | None = None) -> None:
        super().__init__()
        self.rcond = rcond
        self.T: torch.Tensor | None = None
        self.T64: torch.Tensor | None = None
        self.n_shared: int | None = None
        self.rank: int | None = None
        self.condition_number: float | None = None
        self.relative_residual: float | None = None

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, tokens = shared_rows(source_vocab, target_vocab)
        Y = Y.detach().to("cpu", torch.float64)
        X = X.detach().to("cpu", torch.float64)
        if not (torch.isfinite(Y).all() and torch.isfinite(X).all()):
            raise ValueError("vocabulary matrices contain non-finite values; cannot fit a transfer")
        result = torch.linalg.lstsq(Y, X, rcond=self.rcond, driver="gelsd")
        T64 = result.solution  # [ds, dt]
        if not torch.isfinite(T64).all():  # defensive: gelsd should never produce this
            raise ValueError("least-squares transfer produced non-finite values")

        sv = result.singular_values
        smin = float(sv.min())
        x_norm = float(torch.linalg.matrix_norm(X))
        residual = float(torch.linalg.matrix_norm(Y @ T64 - X))

        self.T64 = T64
        self.T = T64.to(torch.float32)
        self.n_shared = len(tokens)
        self.rank = int(result.rank)
        self.condition_number = float(sv.max()) / smin if smin > 0 else math.inf
        self.relative_residual = residual / x_norm if x_norm > 0 else 0.0

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        assert self.T64 is not None
        return apply_float64(vectors, self.T64)

    def _describe(self) -> dict[str, Any]:
        cond = self.condition_number
        return {
            "rcond": self.rcond,
            "bias": False,
            "solver": "torch.linalg.lstsq(driver='gelsd', float64)",
            "n_shared": self.n_shared,
            "rank": self.rank,
            "condition_number": cond if cond is None or math.isfinite(cond) else None,
            "relative_residual": self.relative_residual,
        }
