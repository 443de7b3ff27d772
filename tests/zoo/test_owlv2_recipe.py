"""The mini OWLv2 recipe (a few steps of a tiny config) and the shipped ``mini-owlv2`` folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import vwbench.models  # noqa: F401  (installs the torchvision shim before transformers' OWLv2)
from vwbench.models.owlv2 import Owlv2Adapter, cxcywh_to_xyxy
from vwbench.registry.checkpoints import verify_manifest
from vwbench.zoo.manifest import MANIFEST
from vwbench.zoo.recipes.owlv2 import (
    DetectionOutputs,
    MiniOwlv2Config,
    build_pool,
    dense_region_labels,
    generalized_box_iou,
    hungarian_match,
    matching_costs,
    mini_owlv2_config,
    quality_report,
    region_recall,
    train_mini_owlv2,
)
from vwbench.predictions import BoxPredictions
from vwbench.zoo.vocabulary import VOCAB_DIR
from vwbench.zoo.world_stream import sample_scene

SHIPPED = Path(__file__).resolve().parents[2] / "benchmark" / "vwbench" / "zoo" / "mini-owlv2"

# A smoke floor for the shipped folder on synth-voc, 5 held-out images per concept (50 images), class
# names as queries: its training log records mAP@.5 0.75 on the full 250 held-out images, so an
# untrained or broken checkpoint (about 0.0-0.05) fails while sampling noise does not.
SHIPPED_VOC_MAP50_FLOOR = 0.3

TINY = MiniOwlv2Config(
    vision_width=32,
    vision_layers=1,
    vision_heads=2,
    text_width=16,
    text_layers=1,
    text_heads=2,
    pool_size=24,
    pretrain_steps=12,
    pretrain_batch=16,
    detect_steps=40,
    detect_batch=8,
    pretrain_lr=3e-3,
    detect_lr=3e-3,
    warmup_steps=4,
    quality_heldout_per_concept=0,
    log_every=1000,
    compile_forward=False,  # compiled in its own test only (the compile takes seconds)
)


def _mean(curve: list[list[float]], part: slice) -> float:
    return float(np.mean([v for _, v in curve[part]]))


def _manifest_is_complete(folder: Path) -> None:
    listed = set(json.loads((folder / MANIFEST).read_text())["files"])
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    assert listed == present
    verify_manifest(folder, folder / MANIFEST)  # raises on any hash mismatch


def test_recipe_trains_saves_and_loads(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "mini-owlv2"
    log = train_mini_owlv2(out, seed=0, config=TINY)

    # losses decrease (the pool is tiny, so a few steps overfit it)
    pre = log["pretrain"]["loss"]
    assert _mean(pre, slice(-3, None)) < _mean(pre, slice(0, 3))
    detect = log["detect"]["loss"]["total"]
    assert _mean(detect, slice(-5, None)) < 0.8 * _mean(detect, slice(0, 5))

    # the folder loads through the adapter, in float32, and detects
    _manifest_is_complete(out)
    assert (out / "training_log.json").is_file()
    adapter = Owlv2Adapter.from_pretrained(out)
    assert adapter.dtype == torch.float32
    assert adapter.embedding_dim == TINY.text_width
    assert adapter.image_size == TINY.image_size
    queries = adapter.encode_texts(["a photo of circle", "a photo of bluestar"])
    assert queries.shape == (2, TINY.text_width) and torch.isfinite(queries).all()

    # a short quality report runs on the saved folder
    report = quality_report(out, datasets=["synth-voc"], heldout_per_concept=1)
    entry = report["datasets"]["synth-voc"]
    assert 0.0 <= entry["map"] <= entry["map50"] <= 1.0


def test_compiled_forward_trains_like_the_eager_one(tmp_path: Path) -> None:
    """``compile_forward`` runs the same model: the same loss curve to float tolerance (the
    compiled kernels sum in another order) from the same seed."""
    torch.set_num_threads(1)
    short = dataclasses.replace(TINY, pretrain_steps=2, detect_steps=6)
    eager = train_mini_owlv2(tmp_path / "eager", seed=0, config=short)
    compiled = train_mini_owlv2(tmp_path / "compiled", seed=0, config=short, compile_forward=True)
    assert compiled["config"]["compile_forward"] and not eager["config"]["compile_forward"]
    assert compiled["detect"]["compiled_forward"] and not eager["detect"]["compiled_forward"]
    for part in ("total", "class", "l1", "giou"):
        a = [v for _, v in eager["detect"]["loss"][part]]
        b = [v for _, v in compiled["detect"]["loss"][part]]
        assert len(a) == len(b) == short.detect_steps
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_compile_forward_falls_back_to_eager_without_a_compiler(tmp_path: Path, monkeypatch) -> None:
    """A machine without a C++ compiler (inductor's CPU backend needs one) trains eager and says so."""
    import vwbench.zoo.recipes.owlv2 as recipe

    monkeypatch.setattr(recipe, "compiler_available", lambda: False)
    messages: list[str] = []
    short = dataclasses.replace(TINY, pretrain_steps=1, detect_steps=2, compile_forward=True)
    log = train_mini_owlv2(tmp_path / "out", seed=0, config=short, log=messages.append)
    assert log["config"]["compile_forward"] and not log["detect"]["compiled_forward"]
    assert any("no C++ compiler" in m for m in messages)


def test_region_recall_counts_ground_truth_boxes_any_proposed_box_covers() -> None:
    """Boxes proposed for any query count (a detector's region boxes are shared by its queries);
    scores do not matter; IoU exactly at the threshold counts."""
    t = torch.tensor
    circle = BoxPredictions(
        "circle",
        boxes=[t([[0.0, 0.0, 10.0, 10.0]]), t([[50.0, 50.0, 60.0, 60.0]])],
        scores=[t([0.9]), t([0.1])],
        gt_boxes=[t([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]]), torch.zeros(0, 4)],
    )
    star = BoxPredictions(
        "star",
        boxes=[t([[30.0, 30.0, 40.0, 45.0]]), t([[0.0, 0.0, 10.0, 10.0]])],  # IoU 100/150 with circle's 2nd box
        scores=[t([0.0]), t([0.5])],
        gt_boxes=[torch.zeros(0, 4), t([[0.0, 0.0, 20.0, 10.0], [70.0, 70.0, 80.0, 80.0]])],  # IoU 0.5, 0
    )
    assert region_recall([circle, star], 0.5) == pytest.approx(3 / 4)
    assert region_recall([circle, star], 0.7) == pytest.approx(1 / 4)
    assert region_recall([circle], 0.5) == pytest.approx(1 / 2)


def test_pool_scenes_are_drawn_at_the_datasets_size_and_resized_like_heldout_images() -> None:
    """A detector wider than the datasets' 64-px images trains on 64-px scenes resized by its own
    image processor (as the held-out images are resized at evaluation), not on sharper scenes
    drawn at its input size."""
    from transformers import CLIPTokenizer, Owlv2ForObjectDetection, Owlv2ImageProcessor

    cfg = dataclasses.replace(TINY, image_size=80, pool_size=3, instance_main_keep=1.0)
    tokenizer = CLIPTokenizer.from_pretrained(VOCAB_DIR)
    processor = Owlv2ImageProcessor(size={"height": 80, "width": 80})
    adapter = Owlv2Adapter(Owlv2ForObjectDetection(mini_owlv2_config(tokenizer, cfg)), tokenizer, processor)
    pool = build_pool(adapter, cfg, seed=0, log=lambda _: None)
    scenes = [sample_scene(i, 64, seed=0, variants=cfg.pool_variants, world=cfg.world) for i in range(3)]
    assert all(scene.image.size == (64, 64) for scene in scenes)
    assert pool.pixels.shape == (3, 3, 80, 80)
    expected = adapter.pixel_values([scene.image for scene in scenes]).to(torch.float16)
    assert torch.equal(pool.pixels, expected)


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="mini-owlv2 has not been trained yet")
def test_shipped_mini_owlv2_loads_and_detects() -> None:
    torch.set_num_threads(1)
    _manifest_is_complete(SHIPPED)
    assert sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) <= 8 * 1024 * 1024
    adapter = Owlv2Adapter.from_pretrained(SHIPPED)
    assert adapter.dtype == torch.float32
    assert next(adapter.model.parameters()).dtype == torch.float32

    report = quality_report(SHIPPED, datasets=["synth-voc"], heldout_per_concept=5)
    assert report["datasets"]["synth-voc"]["map50"] >= SHIPPED_VOC_MAP50_FLOOR


def _random_targets(n_images: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Images with 0-6 boxes each (cxcywh in [0, 1]), the first one empty, from 24 categories."""
    g = torch.Generator().manual_seed(seed)
    labels, boxes = [], []
    for i in range(n_images):
        k = int(torch.randint(0, 7, (1,), generator=g)) if i else 0
        labels.append(torch.randint(0, 24, (k,), generator=g))
        centre = torch.rand(k, 2, generator=g)
        size = 0.05 + 0.5 * torch.rand(k, 2, generator=g)
        boxes.append(torch.cat((centre, size), dim=1))
    return labels, boxes


def _per_image_costs(out, labels, boxes, cfg: MiniOwlv2Config) -> list[torch.Tensor]:
    """The DETR matching cost written image by image (cdist and pairwise GIoU), as a reference."""
    prob, costs = out.logits.sigmoid(), []
    for b, (lab, gt) in enumerate(zip(labels, boxes)):
        p = prob[b][:, lab]
        a, g = cfg.focal_alpha, cfg.focal_gamma
        neg = (1 - a) * p**g * -(1 - p + 1e-8).log()
        pos = a * (1 - p) ** g * -(p + 1e-8).log()
        costs.append(
            cfg.cost_class * (pos - neg)
            + cfg.cost_l1 * torch.cdist(out.boxes[b], gt, p=1)
            - cfg.cost_giou * generalized_box_iou(cxcywh_to_xyxy(out.boxes[b]), cxcywh_to_xyxy(gt))
        )
    return costs


def _per_image_dense_labels(labels, boxes, n_regions: int, core: float) -> torch.Tensor:
    """Region labels image by image: the front-most (last drawn) box whose core holds the cell centre."""
    grid = int(round(n_regions**0.5))
    out = torch.full((len(labels), n_regions), -1, dtype=torch.long)
    for b, (lab, gt) in enumerate(zip(labels, boxes)):
        for p in range(n_regions):
            cx, cy = ((p % grid) + 0.5) / grid, ((p // grid) + 0.5) / grid
            for k in range(len(lab)):
                if abs(cx - float(gt[k, 0])) <= float(gt[k, 2]) * core / 2 and abs(cy - float(gt[k, 1])) <= float(gt[k, 3]) * core / 2:
                    out[b, p] = int(lab[k])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_matching_costs_and_matches_equal_the_per_image_ones(seed: int) -> None:
    labels, boxes = _random_targets(12, seed)
    g = torch.Generator().manual_seed(100 + seed)
    n_regions = 16
    centre = torch.rand(12, n_regions, 2, generator=g)
    out = DetectionOutputs(
        logits=3 * torch.randn(12, n_regions, 24, generator=g),
        boxes=torch.cat((centre, 0.05 + 0.5 * torch.rand(12, n_regions, 2, generator=g)), dim=-1),
        objectness=torch.zeros(12, n_regions), pooled=torch.zeros(12, 8),
        class_embeds=torch.zeros(12, n_regions, 8), queries=torch.zeros(24, 8),
    )
    cfg = MiniOwlv2Config()
    assert any(len(lab) == 0 for lab in labels) and any(len(lab) >= 4 for lab in labels)
    references = _per_image_costs(out, labels, boxes, cfg)
    for batched, reference in zip(matching_costs(out, labels, boxes, cfg), references):
        assert batched.shape == reference.shape
        torch.testing.assert_close(batched, reference, rtol=1e-5, atol=1e-5)
    for (rows, cols), reference in zip(hungarian_match(out, labels, boxes, cfg), references):
        if reference.shape[1] == 0:
            assert len(rows) == len(cols) == 0
            continue
        want_rows, want_cols = linear_sum_assignment(reference.numpy())
        assert rows.tolist() == want_rows.tolist() and cols.tolist() == want_cols.tolist()


@pytest.mark.parametrize("core", [0.7, 1.0])
def test_dense_region_labels_pick_the_front_most_box_of_each_image(core: float) -> None:
    labels, boxes = _random_targets(20, 7)
    got = dense_region_labels(labels, boxes, 16, core)
    assert torch.equal(got, _per_image_dense_labels(labels, boxes, 16, core))
    assert (got >= 0).any() and (got == -1).any()
    assert torch.equal(dense_region_labels([torch.zeros(0, dtype=torch.long)] * 2, [torch.zeros(0, 4)] * 2, 16, core),
                       torch.full((2, 16), -1, dtype=torch.long))
