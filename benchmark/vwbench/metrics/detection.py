"""Detection mAP over :class:`~vwbench.predictions.BoxPredictions`, the COCO way.

One word detects one concept, so the evaluation has a single category. Scoring builds the COCO
dicts here and runs ``COCOeval`` itself, from either ``faster_coco_eval`` (default; identical
numbers, faster: ``vwbench bench`` measures by how much) or ``pycocotools``.

COCO conventions that matter here:

* every image counts, including images without a ground-truth box: detections there are false
  positives and lower the precision;
* at most ``max_detections`` (100) detections per image are scored, the highest-scoring ones;
* ``map`` is AP averaged over IoU thresholds .50:.05:.95, ``map50`` is AP at IoU .50, both over
  all object sizes, with COCO's own float64 IoU and recall thresholds (torchmetrics' defaults are
  float32 and differ from ``COCOeval`` in the 4th digit on some inputs).
"""

from __future__ import annotations

import contextlib
import io
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
    if sum(b.shape[0] for b, _, _ in images) == 0:
        return {"map": 0.0, "map50": 0.0}  # ground truth but no detection: nothing is recalled
    precision = _cocoeval_precision(images, backend, max_detections)  # [T, R, K=1, A, M]
    everything = precision[:, :, 0, 0, -1]  # all areas, the largest detection cap
    at_50 = everything[IOU_THRESHOLDS.index(0.5)]
    return {"map": _mean_valid(everything), "map50": _mean_valid(at_50)}


def _mean_valid(values: np.ndarray) -> float:
    """COCOeval.summarize's mean: entries of -1 (no ground truth there) are left out."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _cocoeval_precision(
    images: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], backend: Backend, max_detections: int
) -> np.ndarray:
    """COCOeval's accumulated precision array for one category, from COCO-format dicts built
    here (COCO's float64 thresholds; see the module docstring)."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval

    def xywh(b: list[float]) -> list[float]:
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    coco_images, gt_anns, dets = [], [], []
    for i, (boxes, scores, gt) in enumerate(images):
        image_id = i + 1
        coco_images.append({"id": image_id})
        for g in gt.tolist():
            gt_anns.append({
                "id": len(gt_anns) + 1, "image_id": image_id, "category_id": 1, "bbox": xywh(g),
                "area": (g[2] - g[0]) * (g[3] - g[1]), "iscrowd": 0,
            })
        for b, s in zip(boxes.tolist(), scores.tolist()):
            dets.append({"image_id": image_id, "category_id": 1, "bbox": xywh(b), "score": s})
    with contextlib.redirect_stdout(io.StringIO()):  # both libraries print progress
        truth = COCO()
        truth.dataset = {"info": {}, "images": coco_images, "annotations": gt_anns, "categories": [{"id": 1, "name": "target"}]}
        truth.createIndex()
        found = truth.loadRes(dets)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.params.iouThrs = np.array(IOU_THRESHOLDS)
        evaluation.params.recThrs = np.array(REC_THRESHOLDS)
        evaluation.params.maxDets = [1, 10, max_detections]
        evaluation.evaluate()
        evaluation.accumulate()
    return np.asarray(evaluation.eval["precision"])
