"""Frozen encoders for the studies: image (and text) feature functions over the model adapters.

A study names an encoder by a tier model (``clip``, ``judge``, ``owlv2``) and a pooling
(:data:`POOLINGS`); :func:`load_encoder` resolves and hashes its checkpoint, loads the family's
adapter (:func:`vwbench.registry.adapter_class`), and wraps it as a :class:`FrozenEncoder`:

* ``image-embedding``: the adapter's own image embedding, ``encode_images`` (open_clip: the
  image tower's pooled, projected feature, L2-normalized; the space CLIP's zero-shot compares
  with its text embeddings).
* ``mean-regions``: a detector's per-region features averaged over the image: for OWLv2, the
  output of ``image_embedder`` (the vision tower's patch tokens after its post-layernorm, merged
  with the class token and layer-normed: the features its class and box heads read), mean-pooled
  over the patch grid. OWLv2's ``visual_projection`` (CLIP-style pooled embedding) is not trained
  by detection fine-tuning, so it is not used.

Text features (``embed_texts``) are the adapter's ``encode_texts`` of ordinary prompts,
L2-normalized (CLIP's text embeddings); encoders without one have ``embed_texts = None``.

Nothing here changes an adapter: the encoders call the adapters' existing methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from vwbench.errors import UserError
from vwbench.registry import ResolvedCheckpoint, adapter_class, resolve_checkpoint
from vwbench.registry.schema import ModelSpec

IMAGE_BATCH = 32

ImageFn = Callable[[list[Image.Image]], torch.Tensor]
TextFn = Callable[[list[str]], torch.Tensor]


@dataclass
class FrozenEncoder:
    """An encoder as the studies see it: images (and texts) in, float32 cpu features out."""

    name: str  # the study's name for it (probe:<name>)
    family: str
    pooling: str
    checkpoint: ResolvedCheckpoint
    embed_images: ImageFn
    embed_texts: TextFn | None
    dim: int

    def provenance(self, role: str) -> dict:
        """The result's ``CheckpointProvenance`` entry for this encoder."""
        return {"role": role, "family": self.family, "name": self.checkpoint.name, "revision": self.checkpoint.revision, "sha256": dict(self.checkpoint.files)}


def _image_embedding(adapter) -> ImageFn:
    if not callable(getattr(adapter, "encode_images", None)):
        raise UserError(f"{type(adapter).__name__} has no image embedding; use pooling: mean-regions for a detector")

    def embed(images: list[Image.Image]) -> torch.Tensor:
        with torch.no_grad():
            return adapter.encode_images(list(images)).to("cpu", torch.float32)

    return embed


def _mean_regions(adapter) -> ImageFn:
    model = getattr(adapter, "model", None)
    if not callable(getattr(model, "image_embedder", None)) or not callable(getattr(adapter, "pixel_values", None)):
        raise UserError(f"{type(adapter).__name__} has no region features; pooling: mean-regions applies to OWLv2 detectors")

    def embed(images: list[Image.Image]) -> torch.Tensor:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), IMAGE_BATCH):
                pixels = adapter.pixel_values([im.convert("RGB") for im in images[start : start + IMAGE_BATCH]])
                feature_map, _ = model.image_embedder(pixel_values=pixels)  # [B, h, w, width]
                chunks.append(feature_map.float().mean(dim=(1, 2)).cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, 0)

    return embed


POOLINGS: dict[str, Callable[[object], ImageFn]] = {"image-embedding": _image_embedding, "mean-regions": _mean_regions}
"""Pooling name (a study file's ``pooling:``) -> image feature function of an adapter."""


def _texts(adapter) -> TextFn | None:
    if not callable(getattr(adapter, "encode_images", None)) or not callable(getattr(adapter, "encode_texts", None)):
        return None  # only encoders with a joint image-text space have comparable text features

    def embed(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(adapter.encode_texts(list(texts)).float(), dim=-1).cpu()

    return embed


class EncoderCache:
    """Loads each checkpoint once per process (``align``'s target may be another task's encoder)."""

    def __init__(self, device: torch.device, dtype: torch.dtype, weights_dir: Path | None) -> None:
        self.device, self.dtype, self.weights_dir = device, dtype, weights_dir
        self._resolved: dict[str, ResolvedCheckpoint] = {}
        self._adapters: dict[tuple[str, str], object] = {}

    def resolve(self, spec: ModelSpec) -> ResolvedCheckpoint:
        """Find and hash the checkpoint (a missing one is a one-line error saying how to get it)."""
        pin = spec.checkpoint.model_dump_json()
        if pin not in self._resolved:
            self._resolved[pin] = resolve_checkpoint(spec.checkpoint, self.weights_dir)
        return self._resolved[pin]

    def load(self, name: str, spec: ModelSpec, pooling: str) -> FrozenEncoder:
        from vwbench.runner import load_resolved  # the word runner's loader: damaged checkpoints are one-line errors

        resolved = self.resolve(spec)
        key = (spec.family, str(resolved.path))
        if key not in self._adapters:
            adapter_class(spec.family)  # an unknown family is a one-line error before any loading
            self._adapters[key] = load_resolved(spec.family, resolved, self.device, self.dtype, spec.checkpoint)
        adapter = self._adapters[key]
        if pooling not in POOLINGS:
            raise UserError(f"unknown pooling {pooling!r} for encoder {name} (known: {', '.join(POOLINGS)})")
        embed_images = POOLINGS[pooling](adapter)
        return FrozenEncoder(name, spec.family, pooling, resolved, embed_images, _texts(adapter), _probe_dim(embed_images))


def _probe_dim(embed: ImageFn) -> int:
    """The feature width, from one blank image."""
    return int(embed([Image.new("RGB", (32, 32), (127, 127, 127))]).shape[1])
