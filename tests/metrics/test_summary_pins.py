"""`bootstrap_ci` refuses what it cannot bootstrap (mutation round 6 left these unpinned)."""

from __future__ import annotations

import math

import pytest

from vwbench.metrics.summary import bootstrap_ci


def test_bootstrap_needs_a_positive_number_of_resamples() -> None:
    with pytest.raises(ValueError, match="positive"):
        bootstrap_ci([0.1, 0.2], n_resamples=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_bootstrap_refuses_non_finite_values(bad) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([0.1, bad])
