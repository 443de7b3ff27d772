"""The SAE measurements on hand-computed inputs: FVU (centred on the mean row), mean L0, firing
frequency as a share, the modality thresholds (strict), the Bridge Score's clipping of negative
cosines, and top_bridges' selection, exclusion of the diagonal and tie order."""

from __future__ import annotations

import numpy as np
import pytest

from vwbench.studies import sae_metrics as sm


def test_fvu_is_relative_to_the_mean_row_not_zero() -> None:
    x = np.array([[10.0, 0.0], [12.0, 0.0], [14.0, 0.0]])  # variance about the mean: 4 + 0 + 4 = 8
    x_hat = x + np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # squared error 2
    assert sm.fraction_variance_unexplained(x, x_hat) == pytest.approx(2 / 8)
    assert sm.fraction_variance_unexplained(x, np.repeat(x.mean(axis=0, keepdims=True), 3, axis=0)) == pytest.approx(1.0)


def test_fvu_of_constant_rows_is_zero_only_when_exact() -> None:
    x = np.ones((4, 3))
    assert sm.fraction_variance_unexplained(x, x.copy()) == 0.0
    assert sm.fraction_variance_unexplained(x, x + 0.1) == float("inf")


def test_mean_l0_and_firing_frequency() -> None:
    codes = np.array([[0.0, 2.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    assert sm.mean_l0(codes) == pytest.approx((1 + 2 + 1) / 3)
    np.testing.assert_allclose(sm.firing_frequency(codes), [2 / 3, 2 / 3, 0.0, 0.0])


def test_modality_thresholds_are_strict() -> None:
    shares = np.array([0.75, 0.8, 0.25, 0.2, 0.5, np.nan])  # 0.75 and 1 - 0.75 exact in binary
    mass = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 100.0])
    s = sm.modality_summary(shares, mass, threshold=0.75)
    assert (s.n_alive, s.n_image_only, s.n_text_only, s.n_bimodal) == (5, 1, 1, 3)
    assert s.frac_bimodal == pytest.approx(3 / 5)
    assert s.mass_frac_unimodal == pytest.approx((2.0 + 4.0) / 20.0)


def test_bridge_score_clips_anti_aligned_directions() -> None:
    dictionary = np.array([[1.0, 0.0], [-1.0, 0.0]])  # cosine -1
    codes = np.array([[1.0, 1.0], [2.0, 2.0]])
    m = sm.bridge_matrices(codes, codes, dictionary)
    assert m["cosine"][0, 1] == pytest.approx(-1.0) and m["coactivation"][0, 1] == pytest.approx(1.0)
    assert m["score"][0, 1] == 0.0 and m["paper"][0, 1] == pytest.approx(-m["raw"][0, 1])
    assert sm.top_bridges(m, np.array([0.5, 0.5]), top_k=5) == []


def test_top_bridges_skip_self_pairs_and_zero_scores_and_break_ties_by_index() -> None:
    score = np.array([[0.9, 0.5, 0.0], [0.5, 0.9, 0.2], [0.0, 0.0, 0.9]])
    m = {"score": score, "coactivation": score, "cosine": np.ones((3, 3)), "paper": score}
    shares = np.array([1.0, np.nan, 0.0])
    pairs = sm.top_bridges(m, shares, top_k=10)
    assert [(b.rank, b.i, b.j) for b in pairs] == [(1, 0, 1), (2, 1, 0), (3, 1, 2)]  # only positive, off-diagonal
    assert pairs[0].share_j == -1.0 and pairs[2].share_j == 0.0
    with_self = sm.top_bridges(m, shares, top_k=3, include_self=True)
    assert [(b.i, b.j) for b in with_self] == [(0, 0), (1, 1), (2, 2)]


def test_modality_thresholds_are_symmetric_at_the_default() -> None:
    """Shares of 0.95 and 0.05 are both on the threshold (strict rule): bimodal, not one of each
    (``1 - 0.95`` is ``0.050000000000000044`` in floating point)."""
    summary = sm.modality_summary(np.array([0.95, 0.05]), np.ones(2))
    assert (summary.n_image_only, summary.n_text_only, summary.n_bimodal) == (0, 0, 2)
