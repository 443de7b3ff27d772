"""Ridge regression transfer, with the penalty chosen on held-out vocabulary rows.

``T(λ) = argmin_T ||Y T - X||² + λ ||T||²`` over the shared rows, solved through the SVD of ``Y``
(``T = V diag(s / (s² + λ)) Uᵀ X``) in float64, so every candidate λ costs one matrix product.
λ is picked from ``lambdas`` (relative to the mean squared singular value of ``Y``, so the grid
means the same for any embedding scale) by the mean squared error on a held-out share of the
shared rows; the final map is refitted on all rows with that λ. With ``lambdas=[0]`` it is the
minimum-norm least-squares solution, i.e. ``lstsq``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, apply_float64, shared_rows

DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)


def ridge_solution(Y: torch.Tensor, X: torch.Tensor, lam: float) -> torch.Tensor:
    """``argmin_T ||Y T - X||² + lam ||T||²`` (float64; minimum-norm when ``lam == 0``)."""
    U, s, Vh = torch.linalg.svd(Y, full_matrices=False)
    keep = s > s.max() * max(Y.shape) * torch.finfo(s.dtype).eps  # rank cut-off, as gelsd does
    factor = torch.where(keep, s / (s * s + lam), torch.zeros_like(s))
    return Vh.T @ (factor[:, None] * (U.T @ X))


def heldout_mask(n: int, fraction: float, seed: int) -> torch.Tensor:
    """A fixed random ``fraction`` of ``n`` rows (at least one, at most ``n - 1``)."""
    k = min(n - 1, max(1, round(n * fraction)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[perm[:k]] = True
    return mask


class RidgeTransfer(TransferMethod):
    """``mapped = y @ T`` with ``T`` the ridge solution at the held-out-best penalty."""

    name = "ridge"

    def __init__(self, lambdas: Sequence[float] = DEFAULT_LAMBDAS, heldout: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if not lambdas or any(not math.isfinite(lam) or lam < 0 for lam in lambdas):
            raise ValueError("ridge needs one or more penalties, all finite and >= 0")
        if not 0 < heldout < 1:
            raise ValueError("ridge's held-out fraction must lie in (0, 1)")
        self.lambdas = [float(lam) for lam in lambdas]
        self.heldout, self.seed = heldout, seed
        self.T64: torch.Tensor | None = None
        self.lam: float | None = None
        self.heldout_mse: dict[str, float] = {}

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, _ = shared_rows(source_vocab, target_vocab)
        Y, X = Y.detach().to("cpu", torch.float64), X.detach().to("cpu", torch.float64)
        if not (torch.isfinite(Y).all() and torch.isfinite(X).all()):
            raise ValueError("vocabulary matrices contain non-finite values; cannot fit a transfer")
        scale = float((torch.linalg.matrix_norm(Y) ** 2) / min(Y.shape))  # mean squared singular value
        if len(self.lambdas) == 1:
            best = self.lambdas[0]
        else:
            mask = heldout_mask(Y.shape[0], self.heldout, self.seed)
            fit_y, fit_x, val_y, val_x = Y[~mask], X[~mask], Y[mask], X[mask]
            self.heldout_mse = {}
            for lam in self.lambdas:
                T = ridge_solution(fit_y, fit_x, lam * scale)
                self.heldout_mse[repr(lam)] = float(((val_y @ T - val_x) ** 2).mean())
            best = min(self.lambdas, key=lambda lam: self.heldout_mse[repr(lam)])
        self.lam = best
        self.T64 = ridge_solution(Y, X, best * scale)

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        assert self.T64 is not None
        return apply_float64(vectors, self.T64)

    def _describe(self) -> dict[str, Any]:
        return {"lambda": self.lam, "lambdas": self.lambdas, "heldout": self.heldout, "seed": self.seed, "heldout_mse": self.heldout_mse}
