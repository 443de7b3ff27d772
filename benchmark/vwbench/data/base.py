"""The dataset interface every loader produces, real or procedural.

A dataset yields :class:`Example` objects: an image, COCO-style boxes (``[x, y, w, h]`` in pixels)
with a category each, and the image's concept label, which is the category of its largest box
(the paper's rule for COCO and VOC). A :class:`DatasetSplit` holds the 8 training images per
concept and the held-out images, plus a :class:`Manifest` whose hash results cite.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
        """The RGB image; an unreadable or truncated file is a :class:`DataError` naming it."""
        try:
            image = self.loader()
            return image if image.mode == "RGB" else to_rgb(image)
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            where = self.path or f"image {self.image_id}"
            raise DataError(f"{where}: not a readable image ({exc}); replace the file or remove it from the dataset") from exc

    def boxes_of(self, category: str) -> list[tuple[float, float, float, float]]:
        """The ``xyxy`` boxes of one category (ground truth for detecting that concept)."""
        return [a.xyxy() for a in self.annotations if a.category == category]


_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as a new 8-bit RGB image (never ``image`` itself: callers return it from inside
    ``with Image.open(...)``, which closes the original). 16-bit greyscale (PNG, TIFF) keeps its
    high byte: PIL's own ``convert("RGB")`` clips every value above 255 to white. Raises
    ``ValueError`` for pixels it cannot map (floating point, integers beyond 16 bits)."""
    if image.mode in _SIXTEEN_BIT:
        pixels = np.asarray(image).astype(np.int64)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ValueError(f"{image.mode} pixels outside 0..65535; save the image with 8 or 16 bits per channel")
        return Image.fromarray((pixels >> 8).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        raise ValueError("floating-point pixels; save the image with 8 or 16 bits per channel")
    return image.convert("RGB")


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
    # the annotation files a real dataset's split was selected from (see vwbench.data.real.fingerprint_sources
    # and check_sources), where recorded (by `vwbench data prepare`); not part
    # of the manifest (results cite the selected images and boxes, which these only decide)
    sources: dict[str, dict[str, Any]] | None = None

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

    def validate(self, images_per_concept: int, *, check_files: bool = True) -> None:
        """Raise :class:`DataError` (one line naming the image and the problem) unless every image
        has a unique id, sane boxes inside it and a concept label, its file (where it has one)
        decodes to the size its annotations give, and every concept has enough training images.
        Runs before any training, so bad data never costs a trained word or becomes a number."""
        names = set(self.concept_names)
        for part, examples in (("training", self.train), ("held-out", self.heldout)):
            seen: set[str] = set()
            for ex in examples:
                if ex.image_id in seen:
                    raise DataError(f"{self.name}: image id {ex.image_id!r} appears twice among the {part} images; image ids must be unique")
                seen.add(ex.image_id)
        for ex in self.train + self.heldout:
            check_example(self.name, ex)
            if check_files and ex.path is not None:
                check_image_file(ex)
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
                    f"{images_per_concept} are required; add images of it or lower images_per_concept"
                )


BOX_TOLERANCE = 1.0  # pixels a box may reach past the border (rounding in real annotations)


def check_example(dataset: str, ex: Example) -> None:
    """A :class:`DataError` naming the image unless its size is positive and every box is finite,
    has positive width and height and lies inside the image (within :data:`BOX_TOLERANCE`)."""
    where = f"{ex.path}" if ex.path is not None else f"{dataset}: image {ex.image_id}"
    if not (isinstance(ex.width, int) and isinstance(ex.height, int)) or ex.width <= 0 or ex.height <= 0:
        raise DataError(f"{where}: image size {ex.width}x{ex.height} is not a positive whole number of pixels")
    if not ex.annotations:
        raise DataError(f"{where}: the image has no boxes, so it has no concept label; drop it or annotate it")
    for i, a in enumerate(ex.annotations):
        if len(a.bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in a.bbox):
            raise DataError(f"{where}: box {i} ({a.category!r}) is {a.bbox!r}; expected four finite numbers [x, y, width, height]")
        x, y, w, h = a.bbox
        if w <= 0 or h <= 0:
            raise DataError(f"{where}: box {i} ({a.category!r}) [x {x}, y {y}, w {w}, h {h}] has zero or negative area")
        tol = BOX_TOLERANCE
        if x < -tol or y < -tol or x + w > ex.width + tol or y + h > ex.height + tol:
            raise DataError(f"{where}: box {i} ({a.category!r}) [x {x}, y {y}, w {w}, h {h}] lies outside the {ex.width}x{ex.height} image")
        if not isinstance(a.category, str) or not a.category:
            raise DataError(f"{where}: box {i} has no category name")


def check_image_file(ex: Example) -> None:
    """Decode the image file fully (a truncated file fails here, not mid-evaluation) and compare
    its size with the annotations'."""
    image = ex.load_image()
    if image.size != (ex.width, ex.height):
        raise DataError(
            f"{ex.path}: the file is {image.size[0]}x{image.size[1]} pixels, its annotations say {ex.width}x{ex.height}; "
            f"fix the annotation file's width/height"
        )


def largest_box_label(annotations: Sequence[Annotation]) -> str:
    return max(annotations, key=lambda a: a.area).category
