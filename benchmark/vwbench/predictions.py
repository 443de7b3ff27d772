"""What a model's evaluation of one word produces, before a metric turns it into a number.

These types sit between ``models/`` (which produce them) and ``metrics/`` (which score them), so
that neither knows the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LabelPredictions:
    """Labels assigned to items for one word whose concept is ``target``.

    Generation: the judge's label for each generated image (``actual`` is the target for all).
    Classification: the classifier's label for each held-out image and that image's true concept.
    """

    target: str
    predicted: list[str]
    actual: list[str]


@dataclass
class BoxPredictions:
    """Detections of one word's concept (``target``) on held-out images.

    Per image: predicted ``xyxy`` boxes [k, 4] with scores [k], and the ground-truth ``xyxy``
    boxes of the target category [m, 4] (m may be 0).
    """

    target: str
    boxes: list[torch.Tensor]
    scores: list[torch.Tensor]
    gt_boxes: list[torch.Tensor]


Predictions = LabelPredictions | BoxPredictions
