"""Captioned scenes of the procedural world, for training the mini zoo's models.

The zoo's models learn the world from a stream of scenes drawn with the same recipes as the four
synthetic datasets, but from their own seeds (the datasets' held-out images are never seen) and
with every category of the world as the main object. Each sample carries a caption of its main
(largest) object and the boxes of all visible objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vwbench.data.synth.dataset import GENERATOR_VERSION, RECIPES, SCENE_RECIPES, compose_scene
from vwbench.data.synth.world import CATALOG, render_scene

CATEGORIES = sorted(CATALOG)
TRAIN_STREAM_SALT = 7_919  # keeps stream seeds apart from dataset seeds


@dataclass
class CaptionedScene:
    image: Image.Image
    category: str  # main object's category (the label)
    caption: str
    boxes: list[tuple[str, tuple[float, float, float, float]]]  # (category, xywh)


def caption_for(category: str, colour: str | None, texture: str | None, rng: np.random.Generator) -> str:
    """A caption naming the category, sometimes with its colour or pattern (basic shapes only)."""
    style = CATALOG[category]
    if style.colour is not None:  # an instance: its name is the caption
        return "a photo of " + category
    choice = rng.random()
    if choice < 0.5:
        return "a photo of " + category
    if choice < 0.8 and colour:
        return f"a photo of a {colour} {category}"
    pattern = {"stripes": "striped", "dots": "dotted", "checker": "checkered"}.get(texture or "", "plain")
    return f"a photo of a {pattern} {category}"


def sample_scene(
    index: int,
    size: int,
    seed: int = 0,
    variants: tuple[str, ...] = tuple(RECIPES),
    world: str = GENERATOR_VERSION,
    upright_share: float = 0.0,
) -> CaptionedScene:
    """The ``index``-th scene of the training stream (deterministic in ``seed`` and ``index``),
    drawn with the scene recipes of generator version ``world``; a share ``upright_share`` of the
    scenes has every object upright (:func:`compose_scene`)."""
    recipes = SCENE_RECIPES[world]
    rng = np.random.default_rng([TRAIN_STREAM_SALT, seed, index])
    variant = variants[int(rng.integers(len(variants)))]
    upright = bool(upright_share) and bool(rng.random() < upright_share)  # no draw when 0: old streams stay
    for _ in range(20):
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        objects = compose_scene(category, CATEGORIES, recipes[variant], size, rng, upright=upright)
        image, boxes = render_scene(objects, size, size, rng, clutter=recipes[variant].clutter)
        if boxes and max(boxes, key=lambda b: b[1][2] * b[1][3])[0] == category:
            main = next(o for o in objects if o.category == category)
            return CaptionedScene(image, category, caption_for(category, main.style.colour, main.style.texture, rng), boxes)
    raise RuntimeError(f"could not draw a training scene at index {index}")
