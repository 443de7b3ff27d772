"""Transfer methods: shared-row alignment, least squares, identity and the registry."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from vwbench.errors import UserError
from vwbench.transfer import (
    TRANSFER_METHODS,
    IdentityTransfer,
    LeastSquaresTransfer,
    TransferMethod,
    get_transfer,
    shared_rows,
)


@dataclass
class Vocab:
    """Duck-typed vocabulary (what transfer needs of ``vwbench.models.base.Vocabulary``)."""

    tokens: list[str]
    matrix: torch.Tensor


def words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i}</w>" for i in range(n)]


def planted(n: int = 200, ds: int = 12, dt: int = 7, seed: int = 0, noise: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    Y = torch.randn(n, ds, generator=g, dtype=torch.float64)
    T = torch.randn(ds, dt, generator=g, dtype=torch.float64)
    X = Y @ T + noise * torch.randn(n, dt, generator=g, dtype=torch.float64)
    return Y, T, X


# -- shared_rows ---------------------------------------------------------------------------------


def test_shared_rows_aligns_by_token_regardless_of_order() -> None:
    src_tokens = ["b</w>", "a</w>", "only_src</w>", "c</w>", "d</w>"]
    tgt_tokens = ["d</w>", "only_tgt</w>", "c</w>", "a</w>", "b</w>"]
    src = Vocab(src_tokens, torch.arange(10, dtype=torch.float32).reshape(5, 2))  # row i = [2i, 2i+1]
    tgt = Vocab(tgt_tokens, torch.arange(15, dtype=torch.float32).reshape(5, 3) * -1)
    Y, X, tokens = shared_rows(src, tgt)
    assert tokens == ["a</w>", "b</w>", "c</w>", "d</w>"]  # sorted, one-sided tokens left out
    for i, t in enumerate(tokens):
        assert torch.equal(Y[i], src.matrix[src_tokens.index(t)])
        assert torch.equal(X[i], tgt.matrix[tgt_tokens.index(t)])
    # permuting a vocabulary's rows changes nothing
    perm = [3, 0, 4, 1, 2]
    src2 = Vocab([src_tokens[i] for i in perm], src.matrix[perm])
    Y2, X2, tokens2 = shared_rows(src2, tgt)
    assert tokens2 == tokens and torch.equal(Y2, Y) and torch.equal(X2, X)


def test_shared_rows_too_few_raises_with_count() -> None:
    src = Vocab(words(5) + ["x</w>"], torch.randn(6, 8))
    tgt = Vocab(words(5) + ["y</w>"], torch.randn(6, 3))
    with pytest.raises(ValueError, match="share 5 tokens, fewer than the 9"):
        shared_rows(src, tgt)  # default minimum: source dim + 1
    with pytest.raises(ValueError, match="share 5 tokens, fewer than the 6"):
        shared_rows(src, tgt, min_shared=6)
    assert len(shared_rows(src, tgt, min_shared=5)[2]) == 5
    with pytest.raises(ValueError, match="share 5 tokens"):
        LeastSquaresTransfer().fit(src, tgt)


def test_shared_rows_rejects_duplicate_tokens() -> None:
    src = Vocab(["a</w>", "b</w>", "a</w>"], torch.randn(3, 1))
    with pytest.raises(ValueError, match="'a</w>' more than once"):
        shared_rows(src, Vocab(["a</w>", "b</w>"], torch.randn(2, 1)))


# -- least squares -------------------------------------------------------------------------------


def test_lstsq_recovers_planted_map() -> None:
    Y, T, X = planted()
    t = LeastSquaresTransfer().fit(Vocab(words(200), Y), Vocab(words(200), X))
    assert t.T is not None and t.T.dtype == torch.float32 and t.T.shape == (12, 7)
    torch.testing.assert_close(t.T64, T, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(t.map(Y[:5]), X[:5], rtol=1e-10, atol=1e-10)
    d = t.describe()
    assert d["name"] == "lstsq" and d["n_shared"] == 200 and d["rank"] == 12
    assert d["relative_residual"] < 1e-12 and d["bias"] is False


def test_lstsq_matches_numpy_on_noisy_data() -> None:
    Y, _, X = planted(n=300, ds=16, dt=9, seed=1, noise=0.5)
    # float32 vocabularies, as models give them: both solvers see the same float32 values
    Y32, X32 = Y.float(), X.float()
    t = LeastSquaresTransfer().fit(Vocab(words(300), Y32), Vocab(words(300), X32))
    ref, *_ = np.linalg.lstsq(Y32.double().numpy(), X32.double().numpy(), rcond=None)
    np.testing.assert_allclose(t.T64.numpy(), ref, rtol=1e-8, atol=1e-12 * np.abs(ref).max())
    assert 0.01 < t.describe()["relative_residual"] < 1


def test_lstsq_ill_conditioned_has_no_nan() -> None:
    g = torch.Generator().manual_seed(2)
    Y = torch.randn(100, 6, generator=g, dtype=torch.float64)
    Y[:, 5] = Y[:, 4] + 1e-13 * torch.randn(100, generator=g, dtype=torch.float64)  # near-collinear
    Y[:, 3] = 2 * Y[:, 2]  # exactly collinear
    X = Y @ torch.randn(6, 4, generator=g, dtype=torch.float64)
    t = LeastSquaresTransfer().fit(Vocab(words(100), Y.float()), Vocab(words(100), X.float()))
    assert torch.isfinite(t.T64).all() and torch.isfinite(t.T).all()
    assert t.rank is not None and t.rank < 6
    mapped = t.map(Y[:10].float())
    assert torch.isfinite(mapped).all()
    torch.testing.assert_close(mapped, X[:10].float(), rtol=1e-3, atol=1e-3)  # the fit still holds
    assert t.T64.abs().max() < 1e3  # minimum-norm solution, not an exploded one

    # float64 tables with nearly (not exactly) collinear columns: condition number ~1e9
    Y64 = torch.randn(100, 6, generator=g, dtype=torch.float64)
    Y64[:, 5] = Y64[:, 4] + 1e-9 * torch.randn(100, generator=g, dtype=torch.float64)
    X64 = Y64 @ torch.randn(6, 4, generator=g, dtype=torch.float64)
    t64 = LeastSquaresTransfer().fit(Vocab(words(100), Y64), Vocab(words(100), X64))
    assert torch.isfinite(t64.T64).all() and t64.describe()["condition_number"] > 1e6
    torch.testing.assert_close(t64.map(Y64[:10]), X64[:10], rtol=1e-6, atol=1e-6)


def test_lstsq_map_keeps_leading_dims_and_dtype() -> None:
    Y, _, X = planted(n=50, ds=8, dt=5)
    t = LeastSquaresTransfer().fit(Vocab(words(50), Y.float()), Vocab(words(50), X.float()))
    v = torch.randn(3, 4, 8)  # [W, n_vectors, ds]
    out = t.map(v)
    assert out.shape == (3, 4, 5) and out.dtype == torch.float32
    torch.testing.assert_close(out, (v.double() @ t.T64).float())
    assert t.map(v.half()).dtype == torch.float16
    assert t.map(torch.randn(8, dtype=torch.float64)).shape == (5,)
    with pytest.raises(ValueError, match="dim 8"):
        t.map(torch.randn(3, 7))


def test_map_before_fit_raises() -> None:
    for t in (LeastSquaresTransfer(), IdentityTransfer()):
        assert not t.fitted
        with pytest.raises(RuntimeError, match="fitted"):
            t.map(torch.randn(2, 4))


def test_lstsq_with_real_vocabulary_type() -> None:
    from vwbench.models.base import Vocabulary

    Y, _, X = planted(n=40, ds=4, dt=3)
    src, tgt = Vocabulary(words(40), Y.float()), Vocabulary(words(40)[::-1], X.float().flip(0))
    d = get_transfer("lstsq").fit(src, tgt).describe()
    assert d["source_vocab_hash"] == src.hash() and d["target_vocab_hash"] == tgt.hash()
    assert d["relative_residual"] < 1e-6  # rows aligned by token despite the reversed order


# -- identity ------------------------------------------------------------------------------------


def test_identity_returns_same_values_as_copy() -> None:
    v = Vocab(words(3), torch.randn(3, 6))
    t = IdentityTransfer().fit(v, Vocab(words(2, "u"), torch.randn(2, 6)))
    x = torch.randn(2, 4, 6)
    out = t.map(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert t.describe()["name"] == "identity"


def test_identity_rejects_mismatched_dims() -> None:
    from vwbench.errors import UserError

    with pytest.raises(ValueError, match="source 6 and target 5"):
        IdentityTransfer().fit(Vocab(words(2), torch.randn(2, 6)), Vocab(words(2), torch.randn(2, 5)))
    with pytest.raises(UserError, match="source 6 and target 5"):  # a user's choice: one line in the CLI
        IdentityTransfer().check_spaces(6, 5)
    IdentityTransfer().check_spaces(6, 6)
    LeastSquaresTransfer().check_spaces(6, 5)  # a fitted map joins any two widths


# -- registry ------------------------------------------------------------------------------------


def test_registry() -> None:
    assert set(TRANSFER_METHODS) == {"lstsq", "identity", "ridge", "procrustes", "knn", "anchor", "random"}
    assert all(issubclass(c, TransferMethod) and c.name == n for n, c in TRANSFER_METHODS.items())
    assert isinstance(get_transfer("lstsq"), LeastSquaresTransfer)
    assert get_transfer("lstsq", rcond=1e-6).describe()["rcond"] == 1e-6


def test_unknown_method_suggests() -> None:
    with pytest.raises(UserError, match="did you mean 'lstsq'"):
        get_transfer("lstq")
    with pytest.raises(UserError, match="did you mean 'identity'"):
        get_transfer("identiy")
    with pytest.raises(UserError, match="known: anchor, identity, knn, lstsq, procrustes, random, ridge"):
        get_transfer("orthogonal")


def test_metrics_and_transfer_do_not_import_models() -> None:
    code = (
        "import sys, vwbench.transfer, vwbench.metrics; "
        "bad = [m for m in sys.modules if m.startswith(('vwbench.models', 'torchmetrics', 'torchvision'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
