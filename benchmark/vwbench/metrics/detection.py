"""Detection mAP over :class:`~vwbench.predictions.BoxPredictions`, the COCO way.

One word detects one concept, so the evaluation has a single category. Scoring builds the COCO
dicts here and runs ``COCOeval`` itself, from either ``faster_coco_eval`` (default; the same
numbers to float rounding, e.g. 0.504950495049505 against 0.5049504950495048, and faster:
``vwbench bench`` measures by how much) or ``pycocotools``.

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
import numbers
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


Images = list[tuple[np.ndarray, np.ndarray, np.ndarray]]
"""Per image: predicted boxes [k, 4] (xyxy), their scores [k] and ground-truth boxes [m, 4],
float32 numpy arrays."""


def _as_array(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t.dtype != torch.float32 or t.device.type != "cpu" or t.requires_grad:
            t = t.detach().to("cpu", torch.float32)
        return t.numpy()
    return np.asarray(t, dtype=np.float32)


def _as_boxes(t: torch.Tensor | np.ndarray, what: str, index: int) -> np.ndarray:
    t = _as_array(t)
    if t.size == 0:
        return t.reshape(0, 4)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"{what} of image {index} must have shape [k, 4] (xyxy), got {tuple(t.shape)}")
    return t


def _check(p: BoxPredictions) -> Images:
    """Validate ``p`` and return its images as float32 numpy arrays (see :data:`Images`).

    Shapes are checked image by image; finiteness once over everything (a few small tensor ops
    per image dominated the metric's time on a thousand images), naming the first bad image only
    when there is one."""
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
        scores = _as_array(scores).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"image {i} of {p.target!r} has {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        images.append((boxes, scores, gt))
    if images and not np.isfinite(np.concatenate([a.reshape(-1) for image in images for a in image])).all():
        bad = next(i for i, image in enumerate(images) if not all(np.isfinite(a).all() for a in image))
        raise ValueError(f"image {bad} of {p.target!r} has non-finite boxes or scores")
    inverted = next((i for i, (_, _, gt) in enumerate(images) if ((gt[:, 2] < gt[:, 0]) | (gt[:, 3] < gt[:, 1])).any()), None)
    if inverted is not None:  # COCO would give such a box a negative area and ignore it, silently
        raise ValueError(f"image {inverted} of {p.target!r} has a ground-truth box with x2 < x1 or y2 < y1 (boxes are xyxy)")
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
    if isinstance(max_detections, bool) or not isinstance(max_detections, numbers.Integral) or max_detections < 1:
        raise ValueError(f"max_detections must be a whole number of at least 1, not {max_detections!r}")
    max_detections = int(max_detections)
    images = _check(p)
    if sum(b.shape[0] for b, _, _ in images) == 0:
        return {"map": 0.0, "map50": 0.0}  # ground truth but no detection: nothing is recalled
    precision = _cocoeval_precision(images, backend, max_detections)  # [T, R, K=1, A] at the cap
    everything = precision[:, :, 0, 0]  # all areas
    at_50 = everything[IOU_THRESHOLDS.index(0.5)]
    return {"map": _mean_valid(everything), "map50": _mean_valid(at_50)}


def _mean_valid(values: np.ndarray) -> float:
    """COCOeval.summarize's mean: entries of -1 (no ground truth there) are left out."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _cocoeval_precision(
    images: Images, backend: Backend, max_detections: int
) -> np.ndarray:
    """COCOeval's accumulated precision array for one category at ``max_detections`` per image,
    from COCO-format dicts built here (COCO's float64 thresholds; see the module docstring)."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval

    coco_images = [{"id": i + 1} for i in range(len(images))]
    gt_anns = [
        {"id": k + 1, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
        for k, (image_id, x, y, w, h) in enumerate(_xywh_rows(images, 2))
    ]
    dets = [
        {"image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "score": score}
        for image_id, x, y, w, h, score in _xywh_rows(images, 0, with_scores=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # both libraries print progress
        truth = COCO()
        truth.dataset = {"info": {}, "images": coco_images, "annotations": gt_anns, "categories": [{"id": 1, "name": "target"}]}
        truth.createIndex()
        found = truth.loadRes(dets)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.params.iouThrs = np.array(IOU_THRESHOLDS)
        evaluation.params.recThrs = np.array(REC_THRESHOLDS)
        caps = sorted({1, 10, max_detections})  # both libraries sort them: a cap under 10 is not the last
        evaluation.params.maxDets = caps
        evaluation.evaluate()
        evaluation.accumulate()
    return np.asarray(evaluation.eval["precision"])[..., caps.index(max_detections)]


def _xywh_rows(images: Images, which: int, *, with_scores: bool = False) -> list[list[float]]:
    """Rows ``[image_id, x, y, w, h(, score)]`` of every image's boxes (``which``: 0 predicted,
    2 ground truth), image ids from 1, in image order. Built as one array, converted once: the
    values are the float32 inputs widened to float64 and ``w = x2 - x1`` in float64, exactly what
    the per-box Python arithmetic gave."""
    counts = [image[which].shape[0] for image in images]
    if sum(counts) == 0:
        return []
    boxes = np.concatenate([image[which] for image in images]).astype(np.float64)
    columns = [
        np.repeat(np.arange(1, len(images) + 1, dtype=np.float64), counts),
        boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1],
    ]
    if with_scores:
        columns.append(np.concatenate([image[1] for image in images]).astype(np.float64))
    rows = np.stack(columns, axis=1).tolist()
    for row in rows:
        row[0] = int(row[0])
    return rows
