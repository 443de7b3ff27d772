"""Pins from a mutation round on ``vwbench.cache.features``: a multi-tensor entry reads back
(the checksum does not depend on the tensors' order), a file under another image's key is not
taken, the free-space boundary, a short ``compute`` is an error, and a failed write only skips
caching."""

from __future__ import annotations

import os
import types

import pytest
import torch
from PIL import Image

from vwbench.cache import features
from vwbench.cache.features import FeatureCache, free_space_reserve, image_key
from vwbench.errors import UserError


def _image(i: int) -> Image.Image:
    return Image.new("RGB", (4, 4), (i, 2 * i, 3))


def test_an_entry_of_several_tensors_reads_back_whatever_their_order(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    tensors = {"z_boxes": torch.arange(6.0).reshape(2, 3), "a_logits": torch.tensor([1.5, -2.0]), "m": torch.tensor([7], dtype=torch.int64)}
    cache.store(ns, "k", tensors)
    loaded = cache.load(ns, "k")
    assert loaded is not None and set(loaded) == set(tensors)
    assert all(torch.equal(loaded[name], tensors[name]) for name in tensors)


def test_a_file_under_another_images_key_is_not_taken(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    a, b = image_key(_image(1)), image_key(_image(2))
    cache.store(ns, a, {"x": torch.ones(2)})
    target = cache.path(ns, b)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(cache.path(ns, a).read_bytes())  # a's file copied to b's place
    assert cache.load(ns, a) is not None and cache.load(ns, b) is None
    rows = cache.fetch(ns, [_image(2)], lambda ims: [{"x": torch.zeros(2)} for _ in ims])
    assert torch.equal(rows[0]["x"], torch.zeros(2)) and (cache.hits, cache.misses) == (0, 1)


def test_room_to_store_keeps_exactly_the_reserve_free(tmp_path, monkeypatch) -> None:
    total, block = 4096 * 1000, 4096
    reserve = free_space_reserve(total)
    free = reserve + 10 * block
    stat = types.SimpleNamespace(f_bavail=free // block, f_frsize=block, f_blocks=total // block)
    monkeypatch.setattr(os, "statvfs", lambda path: stat)
    assert features.room_to_store(tmp_path, 10 * block)  # leaves exactly the reserve
    assert not features.room_to_store(tmp_path, 10 * block + 1)


def test_a_compute_that_returns_too_few_rows_is_an_error(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    with pytest.raises(RuntimeError, match="feature computation returned 1 rows for 2 images"):
        cache.fetch(ns, [_image(1), _image(2)], lambda ims: [{"x": torch.ones(1)}])


def test_a_failed_write_only_skips_caching(tmp_path, monkeypatch) -> None:
    def full_disk(path, data, phase):
        raise UserError(f"cannot write {path}: no space left on device")

    monkeypatch.setattr(features, "atomic_write_bytes", full_disk)
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({"model": "m"})
    rows = cache.fetch(ns, [_image(1)], lambda ims: [{"x": torch.full((2,), 3.0)} for _ in ims])
    assert torch.equal(rows[0]["x"], torch.full((2,), 3.0))
    assert cache.load(ns, image_key(_image(1))) is None and cache.not_stored == 0
