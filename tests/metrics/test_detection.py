"""detection_map against pycocotools' COCOeval run directly on COCO-format dicts."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from vwbench.metrics import BACKENDS, detection_map, score
from vwbench.predictions import BoxPredictions

Image = tuple[list[list[float]], list[float], list[list[float]]]  # (boxes, scores, gt) in xyxy


def make(images: list[Image]) -> BoxPredictions:
    return BoxPredictions(
        target="dog",
        boxes=[torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b, _, _ in images],
        scores=[torch.tensor(s, dtype=torch.float32) for _, s, _ in images],
        gt_boxes=[torch.tensor(g, dtype=torch.float32).reshape(-1, 4) for _, _, g in images],
    )


def coco_reference(p: BoxPredictions) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) from pycocotools' COCOeval on hand-built COCO dicts."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: list[float]) -> list[float]:
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    images, gt_anns, dets = [], [], []
    for i, (boxes, scores, gt) in enumerate(zip(p.boxes, p.scores, p.gt_boxes)):
        image_id = i + 1
        images.append({"id": image_id, "width": 1000, "height": 1000})
        for g in gt.tolist():
            w, h = g[2] - g[0], g[3] - g[1]
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "category_id": 1,
                            "bbox": xywh(g), "area": w * h, "iscrowd": 0})
        for b, s in zip(boxes.tolist(), scores.tolist()):
            dets.append({"image_id": image_id, "category_id": 1, "bbox": xywh(b), "score": s})
    categories = [{"id": 1, "name": "dog"}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco = COCO()
        gt_coco.dataset = {"info": {}, "images": images, "annotations": gt_anns, "categories": categories}
        gt_coco.createIndex()
        if dets:
            dt_coco = gt_coco.loadRes(dets)
        else:  # loadRes cannot take an empty list
            dt_coco = COCO()
            dt_coco.dataset = {"info": {}, "images": images, "annotations": [], "categories": categories}
            dt_coco.createIndex()
        ev = COCOeval(gt_coco, dt_coco, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def random_images(seed: int, n_images: int, clutter: tuple[int, int]) -> list[Image]:
    """Seeded images with 0-3 GT boxes (2 on the first), a jittered hit per GT box and
    ``clutter`` (low, high) random false positives, all with random scores."""
    g = torch.Generator().manual_seed(seed)
    images: list[Image] = []
    for i in range(n_images):
        n_gt = int(torch.randint(0, 4, (1,), generator=g)) if i else 2  # some images without GT
        gt = []
        for _ in range(n_gt):
            x, y = (torch.rand(2, generator=g) * 400).tolist()
            w, h = (torch.rand(2, generator=g) * 150 + 20).tolist()
            gt.append([x, y, x + w, y + h])
        boxes, scores = [], []
        for x1, y1, x2, y2 in gt:  # jittered hits of varying quality
            j = (torch.randn(4, generator=g) * 8).tolist()
            boxes.append([x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3]])
        for _ in range(int(torch.randint(*clutter, (1,), generator=g))):  # clutter
            x, y = (torch.rand(2, generator=g) * 500).tolist()
            w, h = (torch.rand(2, generator=g) * 100 + 5).tolist()
            boxes.append([x, y, x + w, y + h])
        scores = torch.rand(len(boxes), generator=g).tolist()
        images.append((boxes, scores, gt))
    return images


# Hand-made fixtures: name -> (images, expected map, expected map50) where the value is known.
A = [10.0, 10.0, 110.0, 110.0]  # 100x100 box
B = [300.0, 300.0, 350.0, 400.0]
FIXTURES: dict[str, tuple[list[Image], float | None, float | None]] = {
    "perfect": ([([A], [0.9], [A]), ([B, A], [0.8, 0.7], [A, B])], 1.0, 1.0),
    # shifted 10 px: IoU = 9000 / 11000 = 0.818, a hit at IoU thresholds .50 to .80
    # (7 of 10) -> AP 0.7, AP50 1.0
    "shifted": ([([[20.0, 10.0, 120.0, 110.0]], [0.9], [A])], 0.7, 1.0),
    # a false positive ranked above the hit: precision 1/2 at recall 1 -> AP 0.5
    "false_positive_first": ([([B, A], [0.9, 0.8], [A])], 0.5, 0.5),
    # the false positive ranked below the hit does not lower AP
    "false_positive_last": ([([A, B], [0.9, 0.8], [A])], 1.0, 1.0),
    # one of two GT boxes found: recall 0.5 -> 51 of 101 recall thresholds at precision 1
    "missed_gt": ([([A], [0.9], [A, B])], 51 / 101, 51 / 101),
    # a detection on an image without GT outscores the hit: a false positive
    "image_without_gt": ([([A], [0.9], [A]), ([B], [0.95], [])], 0.5, 0.5),
    # an image without GT and without detections changes nothing
    "empty_image": ([([A], [0.9], [A]), ([], [], [])], 1.0, 1.0),
    "no_detections": ([([], [], [A]), ([], [], [B])], 0.0, 0.0),
    "random_multi_image": (random_images(0, 12, (0, 15)), None, None),
    "over_100_detections": (random_images(1, 3, (101, 140)), None, None),
}


@pytest.fixture(scope="module")
def references() -> dict[str, tuple[float, float]]:
    return {name: coco_reference(make(images)) for name, (images, _, _) in FIXTURES.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(FIXTURES))
def test_map_matches_cocoeval(name: str, backend: str, references) -> None:
    images, want_map, want_map50 = FIXTURES[name]
    got = detection_map(make(images), backend=backend)
    ref_map, ref_map50 = references[name]
    assert got["map"] == pytest.approx(ref_map, abs=1e-6)
    assert got["map50"] == pytest.approx(ref_map50, abs=1e-6)
    if want_map is not None:  # the hand-computed value, too
        assert got["map"] == pytest.approx(want_map, abs=1e-6)
        assert got["map50"] == pytest.approx(want_map50, abs=1e-6)


def test_random_fixtures_are_not_trivial(references) -> None:
    assert max(len(b) for b, _, _ in FIXTURES["over_100_detections"][0]) > 100  # COCO's cap applies
    for name in ("random_multi_image", "over_100_detections"):
        m, m50 = references[name]
        assert 0.0 < m < m50 < 1.0


def test_no_ground_truth_raises() -> None:
    with pytest.raises(ValueError, match="undefined"):
        detection_map(make([([A], [0.9], []), ([B], [0.5], [])]))
    with pytest.raises(ValueError, match="undefined"):
        detection_map(make([]))


def test_malformed_inputs_raise() -> None:
    p = make([([A], [0.9], [A])])
    with pytest.raises(ValueError, match="1 boxes but 2 scores"):
        detection_map(BoxPredictions("dog", p.boxes, [torch.tensor([0.9, 0.1])], p.gt_boxes))
    with pytest.raises(ValueError, match="images"):
        detection_map(BoxPredictions("dog", p.boxes, p.scores, p.gt_boxes * 2))
    with pytest.raises(ValueError, match=r"\[k, 4\]"):
        detection_map(BoxPredictions("dog", [torch.zeros(1, 3)], p.scores, p.gt_boxes))
    with pytest.raises(ValueError, match="backend"):
        detection_map(p, backend="nope")  # type: ignore[arg-type]
    inverted = torch.tensor([[10.0, 0.0, 5.0, 10.0]])  # x2 < x1: COCO would ignore it and report -1
    with pytest.raises(ValueError, match=r"image 0 of 'dog' has a ground-truth box with x2 < x1"):
        detection_map(BoxPredictions("dog", p.boxes, p.scores, [inverted]))


def test_score_dispatches_boxes() -> None:
    p = make(FIXTURES["shifted"][0])
    assert score(p) == pytest.approx({"map": 0.7, "map50": 1.0}, abs=1e-6)
    assert score(p, "detection") == pytest.approx({"map": 0.7, "map50": 1.0}, abs=1e-6)
    with pytest.raises(ValueError):
        score(p, "generation")


def test_non_finite_values_name_their_image() -> None:
    images = [([A], [0.9], [A]), ([B], [0.8], [B]), ([A], [0.7], [A])]
    for field, value in (("boxes", float("nan")), ("scores", float("inf")), ("gt_boxes", float("-inf"))):
        p = make(images)
        getattr(p, field)[1].view(-1)[0] = value
        with pytest.raises(ValueError, match=r"image 1 of 'dog' has non-finite"):
            detection_map(p)


def test_other_dtypes_devices_and_arrays_score_like_float32_tensors() -> None:
    """Inputs are widened or narrowed to float32 as before: float64 tensors, tensors that need
    grad and numpy arrays give the float32 tensors' value."""
    images = random_images(2, 6, (0, 8))
    want = detection_map(make(images))
    p = make(images)
    as_f64 = BoxPredictions("dog", [b.double() for b in p.boxes], [s.double() for s in p.scores], [g.double() for g in p.gt_boxes])
    with_grad = BoxPredictions("dog", [b.clone().requires_grad_() for b in p.boxes], p.scores, p.gt_boxes)
    as_numpy = BoxPredictions("dog", [b.numpy() for b in p.boxes], [s.numpy() for s in p.scores], [g.numpy() for g in p.gt_boxes])  # type: ignore[misc]
    for other in (as_f64, with_grad, as_numpy):
        assert detection_map(other) == want
