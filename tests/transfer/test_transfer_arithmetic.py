"""Arithmetic of the transfer methods that the planted-problem tests leave open: the map's
orientation on a square (same-width) map, ``rcond``, ridge's single penalty and held-out share,
Procrustes' orthogonality on data that is not a rotation, knn's cosine on the vocabulary side,
and which row ``anchor`` takes when a word is both a whole word and a fragment."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from vwbench.transfer import (
    AnchorTransfer,
    KnnTransfer,
    LeastSquaresTransfer,
    ProcrustesTransfer,
    RidgeTransfer,
)
from vwbench.transfer.ridge import heldout_mask, ridge_solution


@dataclass
class Vocab:
    tokens: list[str]
    matrix: torch.Tensor


def words(n: int) -> list[str]:
    return [f"w{i:04d}</w>" for i in range(n)]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_lstsq_square_map_maps_rows_not_columns() -> None:
    """Same-width spaces (e.g. two 768-wide towers): ``y @ T``, not ``y @ T.T``."""
    g = gen(1)
    Y = torch.randn(100, 6, generator=g, dtype=torch.float64)
    T = torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert not torch.allclose(T, T.T)
    t = LeastSquaresTransfer().fit(Vocab(words(100), Y), Vocab(words(100), Y @ T))
    v = torch.randn(3, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(t.map(v), v @ T, rtol=1e-9, atol=1e-9)
    # the exported float32 map is the same map
    torch.testing.assert_close(t.T, T.to(torch.float32), rtol=1e-5, atol=1e-5)


def test_lstsq_rcond_cuts_small_singular_values() -> None:
    g = gen(2)
    U, _ = torch.linalg.qr(torch.randn(50, 3, generator=g, dtype=torch.float64))
    Y = U @ torch.diag(torch.tensor([10.0, 1.0, 0.05], dtype=torch.float64))  # singular values 10, 1, 0.05
    X = torch.randn(50, 2, generator=g, dtype=torch.float64)
    full = LeastSquaresTransfer().fit(Vocab(words(50), Y), Vocab(words(50), X))
    cut = LeastSquaresTransfer(rcond=0.01).fit(Vocab(words(50), Y), Vocab(words(50), X))
    assert full.rank == 3 and cut.rank == 2
    # the cut solution is the minimum-norm solution on the two kept directions
    Uy, s, Vh = torch.linalg.svd(Y, full_matrices=False)
    keep = s > 0.01 * s.max()
    expected = Vh.T[:, keep] @ torch.diag(1 / s[keep]) @ Uy[:, keep].T @ X
    torch.testing.assert_close(cut.T64, expected, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(cut.T64, full.T64)


def test_ridge_with_one_penalty_uses_that_penalty() -> None:
    g = gen(3)
    Y = torch.randn(60, 5, generator=g, dtype=torch.float64)
    X = Y @ torch.randn(5, 4, generator=g, dtype=torch.float64) + torch.randn(60, 4, generator=g, dtype=torch.float64)
    t = RidgeTransfer(lambdas=[0.5]).fit(Vocab(words(60), Y), Vocab(words(60), X))
    scale = float(torch.linalg.matrix_norm(Y) ** 2 / 5)
    assert t.lam == 0.5
    torch.testing.assert_close(t.T64, ridge_solution(Y, X, 0.5 * scale), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(t.T64, ridge_solution(Y, X, 0.0))


def test_ridge_holds_out_the_requested_share() -> None:
    assert int(heldout_mask(100, 0.3, 0).sum()) == 30
    assert int(heldout_mask(100, 0.1, 0).sum()) == 10
    g = gen(4)
    Y = torch.randn(80, 5, generator=g, dtype=torch.float64)
    X = Y @ torch.randn(5, 3, generator=g, dtype=torch.float64) + 2 * torch.randn(80, 3, generator=g, dtype=torch.float64)
    lambdas = [0.0, 1.0]
    t = RidgeTransfer(lambdas=lambdas, heldout=0.5, seed=7).fit(Vocab(words(80), Y), Vocab(words(80), X))
    mask = heldout_mask(80, 0.5, 7)
    assert int(mask.sum()) == 40
    scale = float(torch.linalg.matrix_norm(Y) ** 2 / 5)
    for lam in lambdas:
        T = ridge_solution(Y[~mask], X[~mask], lam * scale)
        assert t.heldout_mse[repr(lam)] == pytest.approx(float(((Y[mask] @ T - X[mask]) ** 2).mean()), rel=1e-12)


def test_procrustes_map_is_orthogonal_on_data_that_is_no_rotation() -> None:
    g = gen(5)
    Y = torch.randn(40, 4, generator=g, dtype=torch.float64)
    X = Y @ torch.randn(4, 4, generator=g, dtype=torch.float64) + torch.randn(40, 4, generator=g, dtype=torch.float64)
    t = ProcrustesTransfer().fit(Vocab(words(40), Y), Vocab(words(40), X))
    torch.testing.assert_close(t.R.T @ t.R, torch.eye(4, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    # and it is the best rotation: no other orthogonal map fits the standardized rows better
    Ys = (Y - Y.mean(0)) / t.source_scale
    Xs = (X - X.mean(0)) / t.target_scale
    best = torch.linalg.matrix_norm(Ys @ t.R - Xs)
    for seed in range(5):
        Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen(100 + seed), dtype=torch.float64))
        assert best <= torch.linalg.matrix_norm(Ys @ Q - Xs) + 1e-12


def test_knn_ranks_vocabulary_rows_by_cosine_not_length() -> None:
    # a short row almost parallel to the query, and a long row at 40 degrees to it
    Y = torch.tensor([[1.0, 0.0], [10.0, 8.0], [-1.0, 0.5]], dtype=torch.float64)
    X = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    t = KnnTransfer(k=1).fit(Vocab(words(3), Y), Vocab(words(3), X))
    torch.testing.assert_close(t.map(torch.tensor([[1.0, 0.1]], dtype=torch.float64)), X[:1])


def test_knn_needs_k_shared_words() -> None:
    Y = torch.randn(3, 2, generator=gen(6), dtype=torch.float64)
    with pytest.raises(ValueError, match="share 3 tokens"):
        KnnTransfer(k=4).fit(Vocab(words(3), Y), Vocab(words(3), Y))


def test_anchor_prefers_the_whole_word_row() -> None:
    """CLIP BPE has both ``dog`` (a word start) and ``dog</w>`` (the whole word): the init word
    is the whole word."""
    src = Vocab(["dog</w>"], torch.zeros(1, 2))
    tgt = Vocab(["dog", "dog</w>", "cat</w>"], torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    t = AnchorTransfer().fit(src, tgt)
    assert torch.equal(t.map_words(torch.zeros(1, 1, 2), ["dog"])[0, 0], torch.tensor([2.0, 2.0]))
    # a word that only exists as a bare token still maps
    tgt2 = Vocab(["dog", "cat</w>"], torch.tensor([[1.0, 1.0], [3.0, 3.0]]))
    assert torch.equal(AnchorTransfer().fit(src, tgt2).target_row("dog"), torch.tensor([1.0, 1.0]))
