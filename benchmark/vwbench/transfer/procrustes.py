"""Orthogonal Procrustes transfer, after centring and scaling both spaces.

Both sides are centred on their shared rows' mean and scaled to unit root-mean-square row norm;
the map is then the (semi-)orthogonal ``R`` minimising ``||Ŷ R - X̂||_F``, ``R = U Vᵀ`` from the SVD
``ŶᵀX̂ = U S Vᵀ``. With ``ds != dt``, ``R`` has orthonormal rows (``ds < dt``) or columns. A
vector maps to ``((y - μ_Y) / σ_Y) R σ_X + μ_X``: distances between words are kept up to one scale.
"""

from __future__ import annotations

from typing import Any

import torch

from vwbench.transfer.base import TransferMethod, VocabularyLike, shared_rows


def _standardize(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    mean = M.mean(dim=0)
    centred = M - mean
    scale = float(centred.pow(2).sum(dim=1).mean().sqrt())
    if scale == 0.0:
        raise ValueError("procrustes: the shared vocabulary rows are all equal; there is nothing to align")
    return centred / scale, mean, scale


def orthogonal_procrustes(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The (semi-)orthogonal ``R [da, db]`` minimising ``||A R - B||_F``."""
    U, _, Vh = torch.linalg.svd(A.T @ B, full_matrices=False)
    return U @ Vh


class ProcrustesTransfer(TransferMethod):
    """Centre, scale, rotate, un-scale, un-centre (see the module docstring)."""

    name = "procrustes"

    def __init__(self) -> None:
        super().__init__()
        self.R: torch.Tensor | None = None
        self.source_mean: torch.Tensor | None = None
        self.target_mean: torch.Tensor | None = None
        self.source_scale: float | None = None
        self.target_scale: float | None = None

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, _ = shared_rows(source_vocab, target_vocab, min_shared=2)
        Y, X = Y.detach().to("cpu", torch.float64), X.detach().to("cpu", torch.float64)
        if not (torch.isfinite(Y).all() and torch.isfinite(X).all()):
            raise ValueError("vocabulary matrices contain non-finite values; cannot fit a transfer")
        Ys, self.source_mean, self.source_scale = _standardize(Y)
        Xs, self.target_mean, self.target_scale = _standardize(X)
        self.R = orthogonal_procrustes(Ys, Xs)

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        assert self.R is not None and self.source_scale and self.target_scale
        compute = vectors.device if vectors.device.type != "mps" else torch.device("cpu")
        y = vectors.to(compute, torch.float64)
        out = ((y - self.source_mean.to(compute)) / self.source_scale) @ self.R.to(compute)
        out = out * self.target_scale + self.target_mean.to(compute)
        return out.to(vectors.device, vectors.dtype)

    def _describe(self) -> dict[str, Any]:
        return {"centred": True, "source_scale": self.source_scale, "target_scale": self.target_scale}
