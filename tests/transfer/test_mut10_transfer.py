"""Transfer behaviour that a mutation-testing round found unpinned: LAPACK's default ``rcond``,
refusing non-finite or malformed vocabularies and non-float words, refitting, a rank-deficient
ridge solve, the held-out share's bounds and default, Procrustes on degenerate or few rows, knn's
``k`` and defaults, and the anchor map's word count, dtype and independent rows."""

from __future__ import annotations

import pytest
import torch

from tests.transfer.test_transfer_arithmetic import Vocab, gen, words
from vwbench.transfer import AnchorTransfer, KnnTransfer, LeastSquaresTransfer, ProcrustesTransfer, RidgeTransfer
from vwbench.transfer.ridge import heldout_mask


def test_lstsq_default_rcond_is_lapacks_and_keeps_small_but_real_directions() -> None:
    """``rcond=None`` is LAPACK's cut-off (float64 eps x max(n, ds), about 1e-14 here): a
    direction with relative singular value 1e-8 is real and must be kept."""
    g = gen(11)
    U, _ = torch.linalg.qr(torch.randn(40, 2, generator=g, dtype=torch.float64))
    Y = U @ torch.diag(torch.tensor([1.0, 1e-8], dtype=torch.float64))
    X = torch.randn(40, 3, generator=g, dtype=torch.float64)
    t = LeastSquaresTransfer().fit(Vocab(words(40), Y), Vocab(words(40), X))
    assert t.rcond is None and t.describe()["rcond"] is None
    assert t.rank == 2
    assert LeastSquaresTransfer(rcond=1e-6).fit(Vocab(words(40), Y), Vocab(words(40), X)).rank == 1


def test_lstsq_refuses_a_non_finite_source_vocabulary_with_a_clear_message() -> None:
    g = gen(12)
    Y = torch.randn(20, 3, generator=g, dtype=torch.float64)
    X = torch.randn(20, 2, generator=g, dtype=torch.float64)
    Y[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite values; cannot fit"):
        LeastSquaresTransfer().fit(Vocab(words(20), Y), Vocab(words(20), X))


def test_lstsq_exactly_singular_source_reports_no_condition_number() -> None:
    """A source dimension that is 0 on every shared row has singular value exactly 0: the
    condition number is infinite (``None`` in ``describe()``), not a division error."""
    g = gen(13)
    Y = torch.randn(20, 3, generator=g, dtype=torch.float64)
    Y[:, 1] = 0.0
    X = torch.randn(20, 2, generator=g, dtype=torch.float64)
    t = LeastSquaresTransfer().fit(Vocab(words(20), Y), Vocab(words(20), X))
    assert t.rank == 2
    assert t.describe()["condition_number"] is None
    assert torch.isfinite(t.T64).all()


def test_a_vocabulary_with_more_matrix_rows_than_tokens_is_refused() -> None:
    g = gen(14)
    Y = torch.randn(21, 3, generator=g, dtype=torch.float64)  # one row more than tokens
    X = torch.randn(20, 2, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="source vocabulary has 20 tokens but 21 matrix rows"):
        LeastSquaresTransfer().fit(Vocab(words(20), Y), Vocab(words(20), X))


def test_map_refuses_integer_vectors() -> None:
    g = gen(15)
    Y, X = torch.randn(20, 3, generator=g), torch.randn(20, 2, generator=g)
    t = LeastSquaresTransfer().fit(Vocab(words(20), Y), Vocab(words(20), X))
    with pytest.raises(ValueError, match="floating-point"):
        t.map(torch.ones(2, 3, dtype=torch.long))


def test_a_failed_refit_leaves_the_method_unfitted() -> None:
    """``fit`` replaces the previous fit: when the new fit fails, the old map must not stay usable
    under the new call's name."""
    g = gen(16)
    Y, X = torch.randn(20, 3, generator=g), torch.randn(20, 2, generator=g)
    t = LeastSquaresTransfer().fit(Vocab(words(20), Y), Vocab(words(20), X))
    assert t.fitted
    with pytest.raises(ValueError, match="share 2 tokens"):
        t.fit(Vocab(words(2), Y[:2]), Vocab(words(2), X[:2]))
    assert not t.fitted
    with pytest.raises(RuntimeError, match="must be fitted"):
        t.map(torch.zeros(1, 3))


def test_ridge_with_zero_penalty_on_collinear_columns_is_the_minimum_norm_solution() -> None:
    """Exactly collinear source columns: ridge at λ=0 cuts the (round-off) singular value like
    gelsd does and equals lstsq, instead of dividing by ~1e-16."""
    g = gen(17)
    base = torch.randn(60, 3, generator=g, dtype=torch.float64)
    Y = torch.cat([base, base[:, :1] * 2.0], dim=1)  # column 3 = 2 x column 0
    X = torch.randn(60, 2, generator=g, dtype=torch.float64)
    ridge = RidgeTransfer(lambdas=[0.0]).fit(Vocab(words(60), Y), Vocab(words(60), X))
    lstsq = LeastSquaresTransfer().fit(Vocab(words(60), Y), Vocab(words(60), X))
    assert lstsq.rank == 3
    torch.testing.assert_close(ridge.T64, lstsq.T64, rtol=1e-8, atol=1e-10)
    assert float(ridge.T64.abs().max()) < 10.0


def test_heldout_mask_always_leaves_rows_to_fit_on() -> None:
    assert int(heldout_mask(10, 0.99, 0).sum()) == 9
    assert int(heldout_mask(2, 0.9, 3).sum()) == 1
    assert int(heldout_mask(10, 0.001, 0).sum()) == 1


@pytest.mark.parametrize("heldout", [0.0, 1.0, -0.1, 1.5])
def test_ridge_refuses_a_heldout_share_outside_the_open_unit_interval(heldout: float) -> None:
    with pytest.raises(ValueError, match=r"held-out fraction must lie in \(0, 1\)"):
        RidgeTransfer(heldout=heldout)


def test_ridge_defaults_hold_out_a_tenth_of_the_shared_rows() -> None:
    """The default held-out share decides which penalty every default ridge run reports."""
    t = RidgeTransfer()
    assert t.heldout == 0.1 and t.seed == 0
    g = gen(18)
    Y = torch.randn(50, 4, generator=g, dtype=torch.float64)
    X = Y @ torch.randn(4, 2, generator=g, dtype=torch.float64) + torch.randn(50, 2, generator=g, dtype=torch.float64)
    t.fit(Vocab(words(50), Y), Vocab(words(50), X))
    d = t.describe()
    assert d["heldout"] == 0.1 and d["seed"] == 0
    assert set(d["heldout_mse"]) == {repr(lam) for lam in t.lambdas}


def test_procrustes_refuses_shared_rows_that_are_all_equal() -> None:
    Y = torch.ones(5, 3, dtype=torch.float64)
    X = torch.randn(5, 2, generator=gen(19), dtype=torch.float64)
    with pytest.raises(ValueError, match="nothing to align"):
        ProcrustesTransfer().fit(Vocab(words(5), Y), Vocab(words(5), X))


def test_procrustes_needs_only_two_shared_rows_not_source_dim_plus_one() -> None:
    """An orthogonal map is fitted from a cross-covariance: it needs no overdetermined system, so
    four shared rows of 6-wide vectors are enough (lstsq would refuse them)."""
    g = gen(20)
    Y = torch.randn(4, 6, generator=g, dtype=torch.float64)
    X = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = ProcrustesTransfer().fit(Vocab(words(4), Y), Vocab(words(4), X))
    assert t.map(Y).shape == (4, 3) and torch.isfinite(t.map(Y)).all()
    with pytest.raises(ValueError, match="share 4 tokens, fewer than the 7"):
        LeastSquaresTransfer().fit(Vocab(words(4), Y), Vocab(words(4), X))


@pytest.mark.parametrize("k", [0, -1])
def test_knn_refuses_fewer_than_one_neighbour(k: int) -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        KnnTransfer(k=k)


def test_knn_defaults_are_eight_neighbours_at_temperature_0_05() -> None:
    """The defaults every ``--transfer knn`` result uses (and that ``describe()`` records)."""
    g = gen(21)
    Y = torch.randn(30, 4, generator=g, dtype=torch.float64)
    X = torch.randn(30, 2, generator=g, dtype=torch.float64)
    t = KnnTransfer().fit(Vocab(words(30), Y), Vocab(words(30), X))
    assert (t.k, t.temperature) == (8, 0.05)
    assert t.describe()["k"] == 8 and t.describe()["temperature"] == 0.05
    v = torch.randn(1, 4, generator=g, dtype=torch.float64)
    sims = torch.nn.functional.normalize(v, dim=1) @ torch.nn.functional.normalize(Y, dim=1).T
    top, idx = sims.topk(8, dim=1)
    expected = torch.softmax(top / 0.05, dim=1) @ X[idx[0]]
    torch.testing.assert_close(t.map(v), expected, rtol=1e-10, atol=1e-12)


def _anchor() -> AnchorTransfer:
    src = Vocab(["dog</w>", "cat</w>"], torch.zeros(2, 2))
    tgt = Vocab(["dog</w>", "cat</w>"], torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    return AnchorTransfer().fit(src, tgt)


def test_anchor_refuses_a_word_count_that_does_not_match_the_init_words() -> None:
    """One init word for three words would otherwise broadcast to all three silently."""
    with pytest.raises(ValueError, match="1 init words for word tensor \\(3, 2, 2\\)"):
        _anchor().map_words(torch.zeros(3, 2, 2), ["dog"])


def test_anchor_words_come_back_in_the_inputs_dtype() -> None:
    out = _anchor().map_words(torch.zeros(2, 2, 2, dtype=torch.float64), ["dog", "cat"])
    assert out.dtype == torch.float64
    assert out.tolist() == [[[1.0, 2.0, 3.0]] * 2, [[4.0, 5.0, 6.0]] * 2]


def test_anchor_words_are_independent_tensors_a_caller_may_modify() -> None:
    """Each vector is its own memory (not a broadcast view of one row): editing one word's vector
    leaves the others, and the fitted table, unchanged."""
    t = _anchor()
    out = t.map_words(torch.zeros(2, 3, 2), ["dog", "dog"])
    out[0, 0] += 10.0
    assert out[0, 1].tolist() == [1.0, 2.0, 3.0] and out[1, 0].tolist() == [1.0, 2.0, 3.0]
    assert t.target_row("dog").tolist() == [1.0, 2.0, 3.0]
