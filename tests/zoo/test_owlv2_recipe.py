"""The mini OWLv2 recipe (a few steps of a tiny config) and the shipped ``mini-owlv2`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vwbench.models  # noqa: F401  (installs the torchvision shim before transformers' OWLv2)
from vwbench.models.owlv2 import Owlv2Adapter
from vwbench.registry.checkpoints import verify_manifest
from vwbench.zoo.manifest import MANIFEST
from vwbench.zoo.recipes.owlv2 import MiniOwlv2Config, quality_report, train_mini_owlv2

SHIPPED = Path(__file__).resolve().parents[2] / "benchmark" / "vwbench" / "zoo" / "mini-owlv2"

# A smoke floor for the shipped folder on synth-voc, 5 held-out images per concept (50 images), class
# names as queries: its training log records mAP@.5 0.46 on the full 250 held-out images, so an
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
