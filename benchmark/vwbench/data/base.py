"""The dataset interface every loader produces, real or procedural.

A dataset yields :class:`Example` objects: an image, COCO-style boxes (``[x, y, w, h]`` in pixels)
with a category each, and the image's concept label, which is the category of its largest box
(the paper's rule for COCO and VOC). A :class:`DatasetSplit` holds the 8 training images per
concept and the held-out images, plus a :class:`Manifest` whose hash results cite.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vwbench.hashing import sha256_file  # noqa: F401 (re-exported)
from vwbench.errors import DataError


@dataclass(frozen=True)
class Annotation:
    """One box: ``bbox`` is COCO ``[x, y, width, height]`` in pixels."""

    bbox: tuple[float, float, float, float]
    category: str

    @property
    def area(self) -> float:
        return float(self.bbox[2] * self.bbox[3])

    def xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)


@dataclass(frozen=True)
class Concept:
    """A concept of a dataset: its name, the single-token word a trained word starts from, and the
    anchor word used by the fracturing (delta-ball) experiment."""

    name: str
    init_word: str
    anchor_word: str | None = None

    @property
    def anchor(self) -> str:
        return self.anchor_word or self.init_word


@dataclass
class Example:
    """One image with its boxes. ``loader`` returns the RGB image; ``path`` is set for files on
    disk and is what the manifest hashes."""

    image_id: str
    width: int
    height: int
    annotations: list[Annotation]
    loader: Callable[[], Image.Image] = field(repr=False)
    path: Path | None = None

    @property
    def concept(self) -> str:
        """The category of the largest box."""
        if not self.annotations:
            raise DataError(f"image {self.image_id} has no boxes, so it has no concept label")
        return max(self.annotations, key=lambda a: a.area).category

    def load_image(self) -> Image.Image:
        image = self.loader()
        return image if image.mode == "RGB" else image.convert("RGB")

    def boxes_of(self, category: str) -> list[tuple[float, float, float, float]]:
        """The ``xyxy`` boxes of one category (ground truth for detecting that concept)."""
        return [a.xyxy() for a in self.annotations if a.category == category]


@dataclass(frozen=True)
class Manifest:
    """The files (or generated items) of a split with their sha256, and one hash over all."""

    dataset: str
    entries: tuple[tuple[str, str], ...]  # (relative name, sha256)
    extra: tuple[tuple[str, str], ...] = ()  # e.g. generator version, seed, split rule

    @property
    def hash(self) -> str:
        payload = json.dumps(
            {"dataset": self.dataset, "entries": self.entries, "extra": self.extra}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "hash": self.hash,
            "extra": dict(self.extra),
            "entries": [{"name": n, "sha256": h} for n, h in self.entries],
        }


@dataclass
class DatasetSplit:
    """The training and held-out images of a dataset's concepts."""

    name: str
    concepts: list[Concept]
    train: list[Example]
    heldout: list[Example]
    manifest: Manifest

    @property
    def concept_names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def concept(self, name: str) -> Concept:
        for c in self.concepts:
            if c.name == name:
                return c
        raise KeyError(name)

    def train_of(self, concept: str) -> list[Example]:
        return [e for e in self.train if e.concept == concept]

    def validate(self, images_per_concept: int) -> None:
        """Raise :class:`DataError` unless every concept has enough training images."""
        names = set(self.concept_names)
        for ex in self.train + self.heldout:
            if ex.concept not in names:
                raise DataError(
                    f"{self.name}: image {ex.image_id} is labelled {ex.concept!r}, "
                    f"which is not one of the dataset's concepts"
                )
        for name in self.concept_names:
            n = len(self.train_of(name))
            if n < images_per_concept:
                raise DataError(
                    f"{self.name}: concept {name!r} has {n} training images, "
                    f"{images_per_concept} are required"
                )


def largest_box_label(annotations: Sequence[Annotation]) -> str:
    return max(annotations, key=lambda a: a.area).category
