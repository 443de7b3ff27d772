"""The baseline transfer methods on planted problems, with exact expected values."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from vwbench.transfer import (
    AnchorTransfer,
    KnnTransfer,
    LeastSquaresTransfer,
    ProcrustesTransfer,
    RandomTransfer,
    RidgeTransfer,
    get_transfer,
)
from vwbench.transfer.ridge import heldout_mask, ridge_solution


@dataclass
class Vocab:
    tokens: list[str]
    matrix: torch.Tensor


def words(n: int) -> list[str]:
    return [f"w{i:04d}</w>" for i in range(n)]  # zero-padded: shared_rows sorts tokens


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ridge_with_zero_penalty_equals_lstsq() -> None:
    g = gen()
    Y = torch.randn(120, 10, generator=g, dtype=torch.float64)
    X = torch.randn(120, 6, generator=g, dtype=torch.float64)
    ridge = RidgeTransfer(lambdas=[0.0]).fit(Vocab(words(120), Y), Vocab(words(120), X))
    lstsq = LeastSquaresTransfer().fit(Vocab(words(120), Y), Vocab(words(120), X))
    torch.testing.assert_close(ridge.T64, lstsq.T64, rtol=1e-10, atol=1e-12)
    v = torch.randn(3, 4, 10, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ridge.map(v), lstsq.map(v), rtol=1e-10, atol=1e-12)


def test_ridge_solution_matches_the_closed_form() -> None:
    g = gen(1)
    Y = torch.randn(50, 7, generator=g, dtype=torch.float64)
    X = torch.randn(50, 3, generator=g, dtype=torch.float64)
    lam = 2.5
    expected = torch.linalg.solve(Y.T @ Y + lam * torch.eye(7, dtype=torch.float64), Y.T @ X)
    torch.testing.assert_close(ridge_solution(Y, X, lam), expected, rtol=1e-10, atol=1e-12)


def test_ridge_picks_the_penalty_with_the_lowest_heldout_error() -> None:
    g = gen(2)
    # few rows, many columns, heavy noise: some shrinkage must beat none on held-out rows
    Y = torch.randn(60, 40, generator=g, dtype=torch.float64)
    X = Y @ (0.1 * torch.randn(40, 5, generator=g, dtype=torch.float64)) + torch.randn(60, 5, generator=g, dtype=torch.float64)
    lambdas = [0.0, 0.1, 1.0, 10.0]
    t = RidgeTransfer(lambdas=lambdas, heldout=0.25, seed=3).fit(Vocab(words(60), Y), Vocab(words(60), X))
    mse = t.describe()["heldout_mse"]
    assert set(mse) == {repr(lam) for lam in lambdas}
    assert t.lam == min(lambdas, key=lambda lam: mse[repr(lam)]) and t.lam > 0
    # the same validation by hand: fit on the kept rows, score on the held-out ones
    mask = heldout_mask(60, 0.25, 3)
    scale = float(torch.linalg.matrix_norm(Y) ** 2 / 40)
    T = ridge_solution(Y[~mask], X[~mask], 1.0 * scale)
    assert mse["1.0"] == pytest.approx(float(((Y[mask] @ T - X[mask]) ** 2).mean()), rel=1e-12)
    # the final map is refitted on all rows
    torch.testing.assert_close(t.T64, ridge_solution(Y, X, t.lam * scale))
    for bad in ([], [-1.0], [float("nan")], [float("inf")]):  # a NaN penalty gave an all-NaN map
        with pytest.raises(ValueError, match="finite and >= 0"):
            RidgeTransfer(lambdas=bad)


def test_procrustes_recovers_a_rotation_with_shift_and_scale() -> None:
    g = gen(3)
    Y = torch.randn(200, 8, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    shift = torch.randn(8, generator=g, dtype=torch.float64)
    X = 3.0 * (Y @ Q) + shift
    t = ProcrustesTransfer().fit(Vocab(words(200), Y), Vocab(words(200), X))
    torch.testing.assert_close(t.R, Q, rtol=1e-9, atol=1e-9)
    v = torch.randn(5, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(t.map(v), 3.0 * (v @ Q) + shift, rtol=1e-9, atol=1e-9)
    assert t.target_scale / t.source_scale == pytest.approx(3.0, rel=1e-12)


def test_procrustes_between_different_widths_is_semi_orthogonal() -> None:
    g = gen(4)
    Y = torch.randn(100, 6, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(9, 6, generator=g, dtype=torch.float64))  # 9x6, orthonormal columns
    X = Y @ Q.T  # embed the 6-dim space isometrically into 9 dims
    t = ProcrustesTransfer().fit(Vocab(words(100), Y), Vocab(words(100), X))
    assert t.R.shape == (6, 9)
    torch.testing.assert_close(t.R @ t.R.T, torch.eye(6, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(t.map(Y[:7]), X[:7], rtol=1e-9, atol=1e-9)


def test_knn_with_k1_returns_the_nearest_words_target_row() -> None:
    g = gen(5)
    Y = torch.randn(30, 4, generator=g, dtype=torch.float64)
    X = torch.randn(30, 3, generator=g, dtype=torch.float64)
    t = KnnTransfer(k=1).fit(Vocab(words(30), Y), Vocab(words(30), X))
    torch.testing.assert_close(t.map(2.0 * Y[[4, 17]]), X[[4, 17]])  # cosine ignores length


def test_knn_mixes_with_softmax_weights() -> None:
    Y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    X = torch.tensor([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]], dtype=torch.float64)
    t = KnnTransfer(k=2, temperature=0.5).fit(Vocab(words(3), Y), Vocab(words(3), X))
    v = torch.tensor([[3.0, 4.0]], dtype=torch.float64)  # cosines 0.6, 0.8, -0.6
    w1, w0 = torch.softmax(torch.tensor([0.8, 0.6], dtype=torch.float64) / 0.5, 0)
    expected = w0 * X[0] + w1 * X[1]
    torch.testing.assert_close(t.map(v)[0], expected, rtol=1e-12, atol=1e-12)


def test_anchor_returns_the_target_row_of_each_init_word() -> None:
    src = Vocab(["dog</w>", "cat</w>", "cup</w>"], torch.randn(3, 4, generator=gen(6)))
    tgt = Vocab(["cup</w>", "dog</w>", "cat</w>", "red</w>"], torch.arange(12, dtype=torch.float32).reshape(4, 3))
    t = get_transfer("anchor").fit(src, tgt)
    assert isinstance(t, AnchorTransfer)
    vectors = torch.randn(3, 2, 4, generator=gen(7))
    out = t.map_words(vectors, ["dog", "dog", "cat"])
    assert out.shape == (3, 2, 3)
    for w, row in enumerate([1, 1, 2]):
        assert torch.equal(out[w], tgt.matrix[row].expand(2, 3))
    with pytest.raises(ValueError, match="init word"):
        t.map(vectors)
    with pytest.raises(ValueError, match="'zebra' is not a single token"):
        t.map_words(vectors, ["dog", "cat", "zebra"])


def test_map_words_is_map_for_vector_methods() -> None:
    g = gen(8)
    Y, X = torch.randn(40, 5, generator=g), torch.randn(40, 3, generator=g)
    t = LeastSquaresTransfer().fit(Vocab(words(40), Y), Vocab(words(40), X))
    v = torch.randn(2, 4, 5, generator=g)
    assert torch.equal(t.map_words(v, ["a", "b"]), t.map(v))


def test_random_map_matches_target_location_and_scale_and_is_seeded() -> None:
    g = gen(9)
    Y = torch.randn(80, 6, generator=g, dtype=torch.float64)
    X = 5.0 + 2.0 * torch.randn(80, 4, generator=g, dtype=torch.float64)
    a = RandomTransfer(seed=1).fit(Vocab(words(80), Y), Vocab(words(80), X))
    b = RandomTransfer(seed=1).fit(Vocab(words(80), Y), Vocab(words(80), X))
    c = RandomTransfer(seed=2).fit(Vocab(words(80), Y), Vocab(words(80), X))
    assert torch.equal(a.T, b.T) and not torch.equal(a.T, c.T)
    mapped = a.map(Y)
    torch.testing.assert_close(mapped.mean(0), X.mean(0), rtol=1e-10, atol=1e-10)
    rms = lambda M: float((M - M.mean(0)).pow(2).sum(1).mean().sqrt())  # noqa: E731
    assert rms(mapped) == pytest.approx(rms(X), rel=1e-10)
    # the map does not depend on the target values beyond mean and scale
    X2 = X.mean(0) + (X - X.mean(0))[torch.randperm(80, generator=g)]
    d = RandomTransfer(seed=1).fit(Vocab(words(80), Y), Vocab(words(80), X2))
    torch.testing.assert_close(d.T, a.T)


@pytest.mark.parametrize("name", ["ridge", "procrustes", "knn", "random", "lstsq"])
def test_baselines_keep_shape_dtype_and_describe(name: str) -> None:
    g = gen(10)
    Y, X = torch.randn(50, 6, generator=g), torch.randn(50, 4, generator=g)
    t = get_transfer(name).fit(Vocab(words(50), Y), Vocab(words(50), X))
    out = t.map(torch.randn(3, 4, 6, generator=g))
    assert out.shape == (3, 4, 4) and out.dtype == torch.float32 and torch.isfinite(out).all()
    d = t.describe()
    assert d["name"] == name and d["source_dim"] == 6 and d["target_dim"] == 4
