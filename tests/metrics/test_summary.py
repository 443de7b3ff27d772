"""summarize(), the Student-t CI and the bootstrap CI, against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vwbench.metrics import MetricSummary, bootstrap_ci, summarize, t_interval

# t_{0.975, 2} has a closed form for 2 degrees of freedom: (2p - 1) / sqrt(2 p (1 - p)), p = 0.975
#   = 0.95 / sqrt(0.04875) = 4.30265272974946...
T_975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
# t_{0.975, 3} from tables
T_975_DF3 = 3.182446305284263


def test_t_quantile_constant() -> None:
    assert T_975_DF2 == pytest.approx(4.302652729749464, abs=1e-12)
    # the interval's quantile is that closed form: -1, 0, 1 have mean 0 and sample std 1 (to 1e-9:
    # scipy's t quantile moves in the 10th decimal between releases, 4.3026527299 on 1.10-1.12,
    # ...7296 on 1.13-1.16, ...7297 on 1.17)
    assert t_interval([-1.0, 0.0, 1.0]) == pytest.approx((-T_975_DF2 / math.sqrt(3), T_975_DF2 / math.sqrt(3)), abs=1e-9)


def test_three_values_hand_computed() -> None:
    # values 0.5, 0.7, 0.9: mean 0.7, sample std 0.2, half-width 4.3026527297 * 0.2 / sqrt(3)
    half = 0.49682754236875
    s = summarize({"dog": [0.5, 0.7, 0.9]})
    assert s.value == pytest.approx(0.7, abs=1e-12)
    assert s.half_width == pytest.approx(half, abs=1e-9)
    assert s.ci95 == pytest.approx((0.7 - half, 0.7 + half), abs=1e-9)
    assert s.per_concept == {"dog": pytest.approx(0.7)}
    assert s.n == 3


def test_several_concepts_hand_computed() -> None:
    # all values 0.2, 0.4, 0.6, 1.0: mean 0.55; deviations -.35 -.15 .05 .45 -> squares sum 0.35
    # s = sqrt(0.35 / 3) = 0.341565..., half-width 3.1824463 * s / 2
    s = summarize({"dog": [0.2, 0.4], "cat": [0.6, 1.0]})
    std = math.sqrt(0.35 / 3)
    half = T_975_DF3 * std / 2
    assert s.value == pytest.approx(0.55)
    assert s.per_concept == {"dog": pytest.approx(0.3), "cat": pytest.approx(0.8)}
    assert s.ci95 == pytest.approx((0.55 - half, 0.55 + half), abs=1e-9)
    assert s.n == 4
    assert list(s.per_concept) == ["dog", "cat"]  # input order kept


def test_unequal_trials_weigh_values_not_concepts() -> None:
    s = summarize({"dog": [1.0, 1.0, 1.0], "cat": [0.0]})
    assert s.value == pytest.approx(0.75)
    assert s.per_concept == {"dog": 1.0, "cat": 0.0}


def test_single_value_and_constant_values() -> None:
    s = summarize({"dog": [0.4]})
    assert (s.value, s.ci95, s.n) == (0.4, (0.4, 0.4), 1)
    # a stored result's one value: no spread can be estimated, so the interval is the whole range
    assert summarize({"dog": [0.4]}, bounds=(0.0, 1.0)).ci95 == (0.0, 1.0)
    s = summarize({"dog": [0.25, 0.25], "cat": [0.25]})
    assert s.ci95 == pytest.approx((0.25, 0.25))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="no concepts"):
        summarize({})
    with pytest.raises(ValueError, match="'cat' has no values"):
        summarize({"dog": [0.1], "cat": []})
    with pytest.raises(ValueError, match="non-finite"):
        summarize({"dog": [0.1, float("nan")]})


def test_to_dict() -> None:
    s = summarize({"dog": [0.5, 0.7, 0.9], "cat": [0.1]})
    d = s.to_dict()
    assert set(d) == {"value", "ci95", "per_concept", "n"}
    assert isinstance(d["ci95"], list) and len(d["ci95"]) == 2
    assert d == {"value": s.value, "ci95": [s.ci95[0], s.ci95[1]], "per_concept": {"dog": s.per_concept["dog"], "cat": 0.1}, "n": 4}
    assert d["value"] == pytest.approx(0.55) and d["ci95"][0] < d["value"] < d["ci95"][1]
    assert isinstance(summarize({"dog": [1.0]}), MetricSummary)


def test_t_interval_matches_summary() -> None:
    assert t_interval([0.5, 0.7, 0.9]) == summarize({"a": [0.5, 0.7, 0.9]}).ci95
    for bad in (95, 0, 1, float("nan")):  # a percentage or a degenerate level gave (nan, nan)
        with pytest.raises(ValueError, match="fraction in"):
            t_interval([0.5, 0.7, 0.9], confidence=bad)


def test_bootstrap_is_deterministic_and_sane() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.9, 0.55, 0.6, 0.2]
    lo, hi = bootstrap_ci(values)
    assert (lo, hi) == bootstrap_ci(values)  # same seed, same interval
    assert bootstrap_ci(values, seed=1) != (lo, hi)
    mean = sum(values) / len(values)
    assert min(values) <= lo < mean < hi <= max(values)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))
    assert bootstrap_ci([0.7]) == pytest.approx((0.7, 0.7))
    # the level is used: a 50% interval lies strictly inside the 95% one (same resamples)
    lo50, hi50 = bootstrap_ci(values, confidence=0.5)
    assert lo < lo50 < mean < hi50 < hi
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([])


unit = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    n_trials=st.integers(min_value=1, max_value=6),
    data=st.data(),
    n_concepts=st.integers(min_value=1, max_value=5),
)
def test_property_ci_contains_mean_and_concepts_average_to_value(n_trials, data, n_concepts) -> None:
    values = {
        f"c{i}": data.draw(st.lists(unit, min_size=n_trials, max_size=n_trials)) for i in range(n_concepts)
    }
    s = summarize(values)
    assert s.ci95[0] <= s.value <= s.ci95[1]
    assert s.n == n_trials * n_concepts
    mean_of_concepts = sum(s.per_concept.values()) / n_concepts
    assert mean_of_concepts == pytest.approx(s.value, rel=1e-9, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=5), st.lists(unit, min_size=1, max_size=6), min_size=1))
def test_property_ci_contains_mean_any_trial_counts(values) -> None:
    s = summarize(values)
    assert s.ci95[0] <= s.value <= s.ci95[1]
    assert s.n == sum(len(v) for v in values.values())
