"""Frozen image-side features on disk, computed once per (checkpoint, image).

Training and evaluating a word only needs the text side of a model: CLIP's image features,
OWLv2's region embeddings, boxes and objectness, and SD's VAE latents never change with the word.
:class:`FeatureCache` stores them as one small safetensors file per image under a *namespace*
that hashes what produced them (model family, checkpoint file hashes, dtype, device type, feature
kind and preprocessing), keyed by a hash of the image's pixels::

    cache = FeatureCache(Path("runs/features"))
    ns = cache.namespace({"family": "clip", "files": {...}, "kind": "image_features", ...})
    rows = cache.fetch(ns, images, compute=lambda batch: [{"features": f} for f in encode(batch)])

A damaged or foreign file is ignored and recomputed; files are written atomically, so parallel
runs sharing a cache folder at worst compute the same features twice. The cache is optional: it
stores nothing that would leave its disk with less than :func:`free_space_reserve` free, so it
never takes the space a run's words and result need (on a nearly full disk the run goes on
uncached instead of failing to write its result).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from vwbench.errors import UserError
from vwbench.results.atomic import atomic_write_bytes, remove_stale_temps

FEATURES_FORMAT = "vwbench.features/1"
Features = dict[str, torch.Tensor]


def image_key(image: Image.Image) -> str:
    """Content key of an image (ids are not unique across datasets; pixels are)."""
    digest = hashlib.sha1(image.tobytes()).hexdigest()
    return f"{image.width}x{image.height}:{digest}"


def _checksum(tensors: Features) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


RESERVE_CAP_BYTES = 256 * 2**20


def free_space_reserve(total_bytes: int) -> int:
    """What the cache leaves free on a disk of ``total_bytes``: a quarter of it, at most 256 MiB."""
    return min(RESERVE_CAP_BYTES, total_bytes // 4)


def room_to_store(folder: Path, n_bytes: int) -> bool:
    """Whether ``n_bytes`` fit on ``folder``'s disk (its nearest existing ancestor's) with the
    reserve left free; ``True`` when the disk cannot be asked."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this platform
        return True
    free, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
    return free - n_bytes >= free_space_reserve(total)


class FeatureCache:
    """Per-image frozen features under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, log: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.not_stored = 0  # features left out for want of space (see room_to_store)
        self.log = log  # told once when the disk's reserve stops the cache

    @staticmethod
    def namespace(parts: dict[str, Any]) -> str:
        """A short hash of everything that determines the features."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def path(self, namespace: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / namespace / digest[:2] / f"{digest}.safetensors"

    def load(self, namespace: str, key: str) -> Features | None:
        path = self.path(namespace, key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError):
            return None
        if meta.get("format") != FEATURES_FORMAT or meta.get("key") != key or meta.get("checksum") != _checksum(tensors):
            return None
        return tensors

    def store(self, namespace: str, key: str, tensors: Features) -> None:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        meta = {"format": FEATURES_FORMAT, "key": key, "checksum": _checksum(tensors)}
        path = self.path(namespace, key)
        # A killed writer's temp file is removed here. Were it a live writer's (two runs storing
        # the same image at once), that writer's rename fails and it skips storing: harmless.
        remove_stale_temps(path)
        data = save(tensors, metadata=meta)
        if not room_to_store(self.root, len(data)):
            self.not_stored += 1  # the disk is nearly full: keep its space for what the run must write
            if self.not_stored == 1 and self.log is not None:
                self.log(f"warning: the disk of {self.root} is nearly full, so frozen image features are not cached "
                         f"(the run goes on; later runs compute them again): free space there to cache them")
            return
        try:
            atomic_write_bytes(path, data, phase="features")
        except UserError:
            pass  # a full or read-only disk only costs the recomputation next time

    def fetch(
        self,
        namespace: str,
        images: Sequence[Image.Image],
        compute: Callable[[list[Image.Image]], list[Features]],
    ) -> list[Features]:
        """The features of each image: read from disk, or computed and stored.

        When any image is missing, ``compute`` gets every distinct image of the request, not only
        the missing ones: a model's output for an image changes in its last bits with the batch
        it is in, so a missing image is always computed in the batch its caller asked for, not
        in whatever part of it happened to be cached (two workers sharing a cache would otherwise
        store different bits depending on which of them got there first). Images already on disk
        keep their stored features."""
        keys = [image_key(im) for im in images]
        found: dict[str, Features] = {}
        missing: set[str] = set()
        distinct: dict[str, Image.Image] = {}
        for key, image in zip(keys, images):
            if key in distinct:
                continue
            distinct[key] = image
            hit = self.load(namespace, key)
            if hit is None:
                missing.add(key)
            else:
                found[key] = hit
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            computed = compute(list(distinct.values()))
            if len(computed) != len(distinct):
                raise RuntimeError(f"feature computation returned {len(computed)} rows for {len(distinct)} images")
            for key, tensors in zip(distinct, computed):
                if key in missing:
                    self.store(namespace, key, tensors)
                    found[key] = {k: v.detach().to("cpu") for k, v in tensors.items()}
        return [found[k] for k in keys]
