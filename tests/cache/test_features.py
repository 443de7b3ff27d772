"""The on-disk feature cache: each frozen image-side result is computed once per (checkpoint,
image), a damaged file is recomputed, and cached runs give the uncached runs' numbers."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from vwbench.cache import FeatureCache, image_key
from vwbench.registry import TaskRegistry
from vwbench.runner import RunOptions, run_task


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (i * 20, 255 - i * 20, 7)) for i in range(n)]


def test_features_are_computed_once_and_read_back(tmp_path):
    cache = FeatureCache(tmp_path)
    calls: list[int] = []

    def compute(images):
        calls.append(len(images))
        return [{"x": torch.tensor([float(im.getpixel((0, 0))[0])])} for im in images]

    ns = cache.namespace({"model": "m"})
    first = cache.fetch(ns, _images(4) + _images(2), compute)  # duplicates are computed once
    second = cache.fetch(ns, _images(4), compute)
    assert calls == [4]
    assert [r["x"].item() for r in second] == [r["x"].item() for r in first[:4]] == [0.0, 20.0, 40.0, 60.0]
    assert (cache.hits, cache.misses) == (4, 4)
    # another model's namespace does not see them
    cache.fetch(cache.namespace({"model": "other"}), _images(1), compute)
    assert calls == [4, 1]


def test_missing_images_are_computed_in_the_batch_their_caller_asked_for(tmp_path):
    """A model's features depend on the batch in their last bits (mini-clip: a lone image differs
    from the same image in a batch of 16 by up to 7e-8), so a partly cached request recomputes
    the whole request and stores only the missing images: the bits on disk do not depend on
    which images another worker cached first."""
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    batches: list[int] = []

    def compute(images):  # a "model" whose output depends on its batch size
        batches.append(len(images))
        return [{"x": torch.tensor([float(len(images))])} for _ in images]

    images = _images(4)
    cache.fetch(ns, images[1:2], compute)  # another worker cached one image alone
    rows = cache.fetch(ns, images + images[:1], compute)  # the caller's batch of four (and a duplicate)
    assert batches == [1, 4]
    assert [r["x"].item() for r in rows] == [4.0, 1.0, 4.0, 4.0, 4.0]  # the cached one keeps its bits
    assert (cache.hits, cache.misses) == (1, 4)
    assert [r["x"].item() for r in cache.fetch(ns, images, compute)] == [4.0, 1.0, 4.0, 4.0]
    assert batches == [1, 4]


def test_a_damaged_feature_file_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    image = _images(1)[0]
    cache.fetch(ns, [image], lambda ims: [{"x": torch.ones(3)} for _ in ims])
    path = cache.path(ns, image_key(image))
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    assert cache.load(ns, image_key(image)) is None
    again = cache.fetch(ns, [image], lambda ims: [{"x": torch.full((3,), 2.0)} for _ in ims])
    assert torch.equal(again[0]["x"], torch.full((3,), 2.0))


@pytest.mark.parametrize("pair", ["clip->owlv2", "owlv2->clip", "sd->clip"])
def test_cached_runs_give_the_uncached_numbers(tiny_tasks, tmp_path, pair):
    task = TaskRegistry.from_dir(tiny_tasks).get(pair, "synth-tiny")
    plain, _, _ = run_task(task, RunOptions(out_dir=tmp_path / "plain", device="cpu", threads=1, feature_cache=False))
    cached = RunOptions(out_dir=tmp_path / "cached", device="cpu", threads=1)
    cold, cold_path, cold_reused = run_task(task, cached)
    assert not cold_reused
    again = run_task(task, cached)  # the stored result, not a new run
    assert again.reused and again.path == cold_path and again.result == cold
    files = sorted((tmp_path / "cached" / "features").rglob("*.safetensors"))
    assert files, "the run stored no features"
    stamps = {p: p.stat().st_mtime_ns for p in files}
    # other words (another seed) on the same images read every image-side feature from disk
    warm, _, _ = run_task(task, RunOptions(out_dir=tmp_path / "cached", device="cpu", threads=1, seed=5))
    assert {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "cached" / "features").rglob("*.safetensors"))} == stamps
    assert cold.value == pytest.approx(plain.value, abs=1e-6)
    assert [w[task.metric] for w in cold.per_word] == pytest.approx([w[task.metric] for w in plain.per_word], abs=1e-6)
    assert warm.seed == 5
