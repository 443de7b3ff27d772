"""Detection mAP over :class:`~vwbench.predictions.BoxPredictions`, the COCO way.

One word detects one concept, so the evaluation has a single category. Scoring goes through
torchmetrics' ``MeanAveragePrecision`` (COCO's ``COCOeval`` underneath), with either
``faster_coco_eval`` (default, about 10x faster, identical numbers) or ``pycocotools``.

COCO conventions that matter here:

* every image counts, including images without a ground-truth box: detections there are false
  positives and lower the precision;
* at most ``max_detections`` (100) detections per image are scored, the highest-scoring ones;
* ``map`` is AP averaged over IoU thresholds .50:.05:.95, ``map50`` is AP at IoU .50, both over
  all object sizes, with COCO's own float64 IoU and recall thresholds (torchmetrics' defaults are
  float32 and differ from ``COCOeval`` in the 4th digit on some inputs).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from vwbench.predictions import BoxPredictions

Backend = Literal["faster_coco_eval", "pycocotools"]
BACKENDS: tuple[Backend, ...] = ("faster_coco_eval", "pycocotools")
MAX_DETECTIONS = 100
"""COCO's per-image detection cap for AP (``maxDets[-1]``)."""

# COCOeval's own thresholds (pycocotools ``Params.setDetParams``), in float64. torchmetrics'
# defaults are float32 ``torch.linspace`` values (0.55 -> 0.550000011920929, 0.01 ->
# 0.009999999776), which moves recall thresholds that a recall hits exactly (1/5 = 0.2, ...) and
# so changes AP slightly (e.g. 0.011741 instead of COCO's 0.011793 on a cluttered fixture).
IOU_THRESHOLDS: list[float] = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1).tolist()
REC_THRESHOLDS: list[float] = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1).tolist()


def _as_boxes(t: torch.Tensor, what: str, index: int) -> torch.Tensor:
    t = torch.as_tensor(t).detach().to("cpu", torch.float32)
    if t.numel() == 0:
        return t.reshape(0, 4)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"{what} of image {index} must have shape [k, 4] (xyxy), got {tuple(t.shape)}")
    return t


def _check(p: BoxPredictions) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Validate ``p`` and return per-image (boxes [k,4], scores [k], gt [m,4]) as float32 CPU."""
    n = len(p.gt_boxes)
    if len(p.boxes) != n or len(p.scores) != n:
        raise ValueError(
            f"detections of {p.target!r} cover {len(p.boxes)} images (boxes), {len(p.scores)} "
            f"(scores) and {n} (ground truth); they must be equal"
        )
    images = []
    for i, (boxes, scores, gt) in enumerate(zip(p.boxes, p.scores, p.gt_boxes)):
        boxes = _as_boxes(boxes, "predicted boxes", i)
        gt = _as_boxes(gt, "ground-truth boxes", i)
        scores = torch.as_tensor(scores).detach().to("cpu", torch.float32).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"image {i} of {p.target!r} has {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        if not (torch.isfinite(boxes).all() and torch.isfinite(scores).all() and torch.isfinite(gt).all()):
            raise ValueError(f"image {i} of {p.target!r} has non-finite boxes or scores")
        images.append((boxes, scores, gt))
    if sum(gt.shape[0] for _, _, gt in images) == 0:
        raise ValueError(
            f"mAP of {p.target!r} is undefined: none of its {n} held-out images has a ground-truth "
            "box (the held-out set must contain images of the target concept)"
        )
    return images


def detection_map(
    p: BoxPredictions, backend: Backend = "faster_coco_eval", *, max_detections: int = MAX_DETECTIONS
) -> dict[str, float]:
    """COCO mAP of one word's detections: ``{"map": AP@[.5:.95], "map50": AP@.5}``.

    Boxes are ``xyxy`` in pixels; all boxes belong to the one target category. Raises
    ``ValueError`` if no image has ground truth (mAP is undefined there; COCO would report -1,
    which must never be averaged with real values) or if the inputs are malformed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown mAP backend {backend!r}; use one of {', '.join(BACKENDS)}")
    images = _check(p)

    # torchmetrics imports torchvision, which needs the shim next to a CPU-only torch.
    from vwbench.compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        iou_thresholds=IOU_THRESHOLDS,
        rec_thresholds=REC_THRESHOLDS,
        max_detection_thresholds=[1, 10, max_detections],
        backend=backend,
    )
    metric.warn_on_many_detections = False  # the cap is COCO's convention, documented above
    preds = [
        {"boxes": b, "scores": s, "labels": torch.zeros(b.shape[0], dtype=torch.long)} for b, s, _ in images
    ]
    target = [{"boxes": g, "labels": torch.zeros(g.shape[0], dtype=torch.long)} for _, _, g in images]
    metric.update(preds, target)
    result = metric.compute()
    return {"map": float(result["map"]), "map50": float(result["map_50"])}
