"""The transfer methods' refusals: vocabularies they cannot fit on (non-finite rows, duplicated
tokens, rows that do not match the tokens, no spread), vectors they cannot map, and settings out
of range. Each is a ValueError naming the problem, never a silently wrong map."""

from __future__ import annotations

import pytest
import torch

from vwbench.transfer import TRANSFER_METHODS, get_transfer
from vwbench.transfer.base import shared_rows
from vwbench.transfer.knn import KnnTransfer
from vwbench.transfer.ridge import RidgeTransfer


class Vocab:
    """A duck-typed vocabulary (transfer never imports model code)."""

    def __init__(self, tokens: list[str], matrix: torch.Tensor) -> None:
        self.tokens, self.matrix = tokens, matrix


def _pair(n: int = 40, ds: int = 6, dt: int = 5, seed: int = 0) -> tuple[Vocab, Vocab]:
    g = torch.Generator().manual_seed(seed)
    tokens = [f"w{i:03d}</w>" for i in range(n)]
    return Vocab(tokens, torch.randn(n, ds, generator=g)), Vocab(tokens, torch.randn(n, dt, generator=g))


FITTED_ON_SHARED_ROWS = ["lstsq", "ridge", "procrustes", "knn", "random"]


@pytest.mark.parametrize("name", FITTED_ON_SHARED_ROWS)
@pytest.mark.parametrize("side", ["source", "target"])
def test_a_non_finite_vocabulary_row_is_refused_by_every_fitted_method(name: str, side: str) -> None:
    source, target = _pair()
    bad = source if side == "source" else target
    bad.matrix[3, 1] = float("nan")
    with pytest.raises(ValueError, match="vocabulary matrices contain non-finite values; cannot fit a transfer"):
        get_transfer(name).fit(source, target)


def test_a_failed_refit_leaves_the_method_unfitted() -> None:
    """fit() forgets the previous fit first: a method whose refit failed cannot map with stale
    parameters of other vocabularies."""
    source, target = _pair()
    method = get_transfer("lstsq").fit(source, target)
    assert method.fitted
    source.matrix[0, 0] = float("inf")
    with pytest.raises(ValueError):
        method.fit(source, target)
    assert not method.fitted and repr(method) == "LeastSquaresTransfer(unfitted)"
    with pytest.raises(RuntimeError, match="must be fitted before map"):
        method.map(torch.zeros(2, 6))


def test_procrustes_refuses_shared_rows_without_spread() -> None:
    tokens = [f"w{i}</w>" for i in range(10)]
    source = Vocab(tokens, torch.ones(10, 4))
    target = Vocab(tokens, torch.randn(10, 3))
    with pytest.raises(ValueError, match="procrustes: the shared vocabulary rows are all equal; there is nothing to align"):
        get_transfer("procrustes").fit(source, target)


def test_shared_rows_refuses_duplicated_tokens_and_mismatched_rows() -> None:
    source, target = _pair()
    dup = Vocab(source.tokens[:-1] + [source.tokens[0]], source.matrix)
    with pytest.raises(ValueError, match=r"source vocabulary lists token 'w000</w>' more than once; rows cannot be aligned"):
        shared_rows(dup, target)
    short = Vocab(target.tokens, target.matrix[:-1])
    with pytest.raises(ValueError, match=r"target vocabulary has 40 tokens but 39 matrix rows"):
        shared_rows(source, short)
    flat = Vocab(source.tokens, source.matrix.reshape(-1))
    with pytest.raises(ValueError, match=r"vocabulary matrix must be 2-d \[n, dim\], got \(240,\)"):
        shared_rows(flat, target)


def test_maps_refuse_integer_vectors_and_keep_the_input_dtype() -> None:
    source, target = _pair()
    method = get_transfer("ridge").fit(source, target)
    with pytest.raises(ValueError, match="ridge transfer maps floating-point vectors, got torch.int64"):
        method.map(torch.zeros(2, 6, dtype=torch.int64))
    out = method.map(torch.zeros(3, 4, 6, dtype=torch.float64))
    assert out.shape == (3, 4, 5) and out.dtype == torch.float64


def test_anchor_map_words_needs_a_fit_and_one_init_word_per_word() -> None:
    source, target = _pair()
    anchor = get_transfer("anchor")
    with pytest.raises(RuntimeError, match=r"AnchorTransfer must be fitted before map_words\(\)"):
        anchor.map_words(torch.zeros(2, 4, 6), ["w000", "w001"])
    anchor.fit(source, target)
    with pytest.raises(ValueError, match=r"anchor: 1 init words for word tensor \(2, 4, 6\)"):
        anchor.map_words(torch.zeros(2, 4, 6), ["w000"])
    mapped = anchor.map_words(torch.zeros(2, 4, 6), ["w000", "w002"])
    assert torch.equal(mapped[1, 3], target.matrix[2]) and torch.equal(mapped[0, 0], target.matrix[0])
    with pytest.raises(ValueError, match="is not a single token of the target vocabulary"):
        anchor.map_words(torch.zeros(1, 4, 6), ["zebra"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: KnnTransfer(k=0), "knn needs k >= 1"),
        (lambda: KnnTransfer(temperature=0.0), "knn needs a temperature > 0"),
        (lambda: RidgeTransfer(heldout=1.0), "ridge's held-out fraction must lie in \\(0, 1\\)"),
    ],
)
def test_out_of_range_settings_are_refused_when_the_method_is_made(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_every_builtin_describes_its_fit_for_provenance() -> None:
    source, target = _pair()
    for name, cls in TRANSFER_METHODS.items():
        if name == "identity":
            continue  # identity maps only between spaces of one width
        described = cls().fit(source, target).describe()
        assert described["name"] == name and described["fitted"] is True
        assert (described["source_dim"], described["target_dim"]) == (6, 5)
