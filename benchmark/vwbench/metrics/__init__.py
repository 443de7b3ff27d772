"""Metrics: turn a model's :mod:`~vwbench.predictions` for one word into numbers.

=========================  ===============  =================  ================
metric                     task kind        predictions        higher is better
=========================  ===============  =================  ================
``generation_accuracy``    generation       LabelPredictions   yes
``classification_accuracy`` classification  LabelPredictions   yes
``map``                    detection        BoxPredictions     yes
``map50``                  detection        BoxPredictions     yes
=========================  ===============  =================  ================

``score(predictions, kind)`` computes every metric of the predictions' kind; ``METRICS`` lets a
registry validate a task's metric name. This package knows nothing about models.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import singledispatch
from typing import Any, Literal, NamedTuple

from vwbench.errors import UserError
from vwbench.metrics.accuracy import classification_accuracy, generation_accuracy
from vwbench.metrics.detection import BACKENDS, detection_map
from vwbench.metrics.summary import MetricSummary, bootstrap_ci, summarize, t_interval
from vwbench.predictions import BoxPredictions, LabelPredictions

MetricKind = Literal["generation", "detection", "classification"]
"""The task kind a metric belongs to (the same strings as ``vwbench.models.base.TaskKind``)."""


class MetricSpec(NamedTuple):
    """What a metric name means: its task kind, how to compute it on one word's predictions,
    and its direction."""

    kind: MetricKind
    compute: Callable[[Any], float]
    higher_is_better: bool


def detection_map_50_95(p: BoxPredictions) -> float:
    """COCO AP averaged over IoU .50:.95 (``detection_map(p)["map"]``)."""
    return detection_map(p)["map"]


def detection_map_50(p: BoxPredictions) -> float:
    """COCO AP at IoU .50 (``detection_map(p)["map50"]``)."""
    return detection_map(p)["map50"]


METRICS: dict[str, MetricSpec] = {
    "generation_accuracy": MetricSpec("generation", generation_accuracy, True),
    "classification_accuracy": MetricSpec("classification", classification_accuracy, True),
    "map": MetricSpec("detection", detection_map_50_95, True),
    "map50": MetricSpec("detection", detection_map_50, True),
}


def metrics_for(kind: str) -> list[str]:
    """Names of the metrics a task of ``kind`` produces, in ``METRICS`` order."""
    return [name for name, spec in METRICS.items() if spec.kind == kind]


def get_metric(name: str, kind: str | None = None) -> MetricSpec:
    """The spec of metric ``name``; ``UserError`` (with a did-you-mean) if it is unknown or, when
    ``kind`` is given, belongs to another task kind."""
    spec = METRICS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(METRICS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown metric {name!r}{hint} (known: {', '.join(METRICS)})")
    if kind is not None and spec.kind != kind:
        raise UserError(
            f"metric {name!r} scores {spec.kind} tasks, not {kind} tasks "
            f"(use one of: {', '.join(metrics_for(kind)) or 'none'})"
        )
    return spec


@singledispatch
def score(p: Any, kind: str | None = None) -> dict[str, float]:
    """Every metric of one word's predictions: ``{metric name: value}``.

    ``LabelPredictions`` need ``kind`` ("generation" or "classification"): the same type carries
    both. ``BoxPredictions`` are detection; ``kind`` may be omitted or "detection".
    """
    raise TypeError(f"no metric scores predictions of type {type(p).__name__}")


@score.register
def _score_labels(p: LabelPredictions, kind: str | None = None) -> dict[str, float]:
    if kind == "generation":
        return {"generation_accuracy": generation_accuracy(p)}
    if kind == "classification":
        return {"classification_accuracy": classification_accuracy(p)}
    raise ValueError(
        f"LabelPredictions need kind='generation' or kind='classification' to be scored, got {kind!r}"
    )


@score.register
def _score_boxes(p: BoxPredictions, kind: str | None = None) -> dict[str, float]:
    if kind not in (None, "detection"):
        raise ValueError(f"BoxPredictions are detection predictions, got kind={kind!r}")
    return detection_map(p)


__all__ = [
    "BACKENDS",
    "METRICS",
    "MetricKind",
    "MetricSpec",
    "MetricSummary",
    "bootstrap_ci",
    "classification_accuracy",
    "detection_map",
    "detection_map_50",
    "detection_map_50_95",
    "generation_accuracy",
    "get_metric",
    "metrics_for",
    "score",
    "summarize",
    "t_interval",
]
