"""Aggregating one metric over concepts and randomized trials, with 95% confidence intervals.

The protocol trains several words per concept (randomized trials, varying the init word) and
reports each (model, dataset) cell as the mean over every (concept, trial) value with a 95%
confidence interval over those values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass
class MetricSummary:
    """One metric over all words of a cell.

    ``value``: mean over all (concept, trial) values. ``ci95``: 95% interval of that mean.
    ``per_concept``: mean over trials for each concept. ``n``: number of values.
    """

    value: float
    ci95: tuple[float, float]
    per_concept: dict[str, float]
    n: int

    @property
    def half_width(self) -> float:
        """Half the CI's width (the "±" of a table)."""
        return (self.ci95[1] - self.ci95[0]) / 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ci95`` as a list)."""
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def _flatten(values: Mapping[str, Sequence[float]]) -> np.ndarray:
    if not values:
        raise ValueError("cannot summarize a metric without values (no concepts)")
    for concept, vs in values.items():
        if len(vs) == 0:
            raise ValueError(f"concept {concept!r} has no values to summarize")
    flat = np.array([float(v) for vs in values.values() for v in vs], dtype=np.float64)
    if not np.isfinite(flat).all():
        bad = [c for c, vs in values.items() if not all(math.isfinite(float(v)) for v in vs)]
        raise ValueError(f"non-finite metric values for concepts {bad}")
    return flat


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean: ``mean ± t_{(1+c)/2, n-1} · s / √n`` (sample std ``s``).

    With a single value the interval is ``[value, value]`` (no spread can be estimated).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence is a fraction in (0, 1), e.g. 0.95; got {confidence}")
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("cannot compute an interval of no values")
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean)
    s = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, df=x.size - 1)) * s / math.sqrt(x.size)
    return (mean - half, mean + half)


def summarize(values: Mapping[str, Sequence[float]], bounds: tuple[float, float] | None = None) -> MetricSummary:
    """Summarize ``{concept: [one value per trial]}``.

    Concepts with more trials weigh more in ``value`` (it is the mean over all values, as the
    CI is); with equal trial counts ``value`` is also the mean of ``per_concept``. ``bounds``
    cuts the CI to a range: stored results pass ``(0.0, 1.0)`` (every vwbench metric is a share,
    and a t-interval over few values can leave that range), so pass it too to get the interval a
    result file would hold; with ``bounds`` a single value (one concept, one trial), whose spread
    cannot be estimated, gets the whole range rather than a zero-width interval that would read as
    certainty. Raises ``ValueError`` for no concepts, a concept without values, or non-finite
    values.
    """
    flat = _flatten(values)
    per_concept = {c: float(np.mean(np.asarray(vs, dtype=np.float64))) for c, vs in values.items()}
    low, high = t_interval(flat, 0.95)
    if bounds is not None:
        low, high = (bounds[0], bounds[1]) if flat.size == 1 else (max(bounds[0], low), min(bounds[1], high))
    return MetricSummary(
        value=float(flat.mean()),
        ci95=(low, high),
        per_concept=per_concept,
        n=int(flat.size),
    )


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values``; deterministic for a given seed.

    Resamples the values with replacement ``n_resamples`` times and returns the
    ``(1-c)/2`` and ``(1+c)/2`` percentiles of the resampled means. No distributional
    assumption, but it under-covers for very small samples.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("cannot bootstrap an interval of no values")
    if not np.isfinite(x).all():
        raise ValueError("cannot bootstrap non-finite values")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return (float(lo), float(hi))
