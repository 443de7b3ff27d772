"""The four synthetic datasets, shaped like the paper's four.

| variant | like | scenes |
|---|---|---|
| imagenet | ImageNet DET | one salient object per image, fine-grained shape categories |
| dreambooth | DreamBooth | one particular instance (fixed colours and pattern) among look-alikes of its shape |
| coco | COCO | cluttered scenes, many small objects of many categories |
| voc | PASCAL VOC | fewer, larger objects of common categories |

Every image is rendered from its own seed, derived from (the variant's image version, dataset
name, dataset seed, variant, concept, split, index), so the same spec gives the same bytes on every machine with the same Pillow version
(Pillow's anti-aliasing changed between releases: 10.0 and 13.0 differ in a few pixels of a few
images, by a few levels; the boxes do not change). An image of concept ``c`` is drawn
so that ``c`` is its largest visible box (the paper's labelling rule); a scene where occlusion
breaks that is redrawn from the next sub-seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from vwbench.data.base import Annotation, Concept, DatasetSplit, Example, Manifest
from vwbench.data.synth.world import CATALOG, PlacedObject, render_scene
from vwbench.errors import DataError

GENERATOR_VERSION = "3"
BASIC_SHAPES = [name for name, style in CATALOG.items() if style.colour is None]


@dataclass(frozen=True)
class SceneRecipe:
    n_distractors: tuple[int, int]  # inclusive range
    main_size: tuple[float, float]  # radius as a fraction of the image side
    distractor_scale: tuple[float, float]  # distractor radius relative to the main object's
    clutter: int
    distractor_pool: str  # "concepts" | "world" | "lookalike" | "none"


# The recipes of every generator version (the zoo's training streams name the version they were
# trained on, so a shipped checkpoint stays reproducible when the datasets move on).
# Version 3 made the labelled object of the coco and voc variants clearly the largest box: under
# version 2 distractors reached 0.9 of its radius, so at 64 px which box was largest was often a
# coin toss (mini-clip's zero-shot accuracy on synth-coco was 0.40 with its main objects alone at
# 0.66). imagenet and dreambooth did not change and keep their version-2 images.
SCENE_RECIPES: dict[str, dict[str, SceneRecipe]] = {
    "2": {
        "imagenet": SceneRecipe((0, 0), (0.28, 0.40), (0.0, 0.0), 3, "none"),
        "dreambooth": SceneRecipe((0, 2), (0.24, 0.36), (0.45, 0.8), 2, "lookalike"),
        "coco": SceneRecipe((3, 5), (0.16, 0.23), (0.55, 0.9), 8, "world"),
        "voc": SceneRecipe((0, 2), (0.22, 0.34), (0.45, 0.8), 2, "concepts"),
    },
}
SCENE_RECIPES["3"] = {
    **SCENE_RECIPES["2"],
    "coco": SceneRecipe((3, 5), (0.22, 0.30), (0.4, 0.7), 8, "world"),
    "voc": SceneRecipe((0, 2), (0.22, 0.34), (0.35, 0.65), 2, "concepts"),
}
RECIPES: dict[str, SceneRecipe] = SCENE_RECIPES[GENERATOR_VERSION]


def _image_version(variant: str) -> str:
    """The first generator version with the variant's current recipe: its images' seeds use it,
    so a variant's images change only when its recipe does."""
    return next(v for v in sorted(SCENE_RECIPES, key=int) if SCENE_RECIPES[v].get(variant) == RECIPES[variant])


_SPLITS = {"train": 0, "heldout": 1}


def _seed(*parts: Any) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _distractor_category(recipe: SceneRecipe, target: str, concepts: list[str], rng: np.random.Generator) -> str:
    if recipe.distractor_pool == "concepts":
        pool = [c for c in concepts if c != target]
    elif recipe.distractor_pool == "lookalike":
        # same shape as the instance in a random style, or another basic shape
        pool = [CATALOG[target].shape] * 2 + [s for s in BASIC_SHAPES if s != CATALOG[target].shape]
    else:
        pool = [c for c in BASIC_SHAPES + concepts if c != target]
    return pool[int(rng.integers(len(pool)))]


def compose_scene(
    target: str, concepts: list[str], recipe: SceneRecipe, size: int, rng: np.random.Generator, *, upright: bool = False
) -> list[PlacedObject]:
    """The objects of one scene. ``upright``: every object unrotated and at its category's own
    aspect (the same random draws are made, so the rest of the scene is the same)."""

    def place(category: str, radius: float, style_of: str) -> PlacedObject:
        style = CATALOG[style_of].sample(rng)
        margin = radius * 0.8
        aspect = style.aspect or float(np.exp(rng.uniform(-0.25, 0.25)))
        cx, cy = float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin))
        rotation = float(rng.uniform(-0.5, 0.5)) if style.aspect is None else 0.0
        if upright:
            aspect, rotation = style.aspect or 1.0, 0.0
        return PlacedObject(category=category, style=style, cx=cx, cy=cy, size=radius, aspect=aspect, rotation=rotation)

    main_radius = float(rng.uniform(*recipe.main_size)) * size
    objects = []
    n = int(rng.integers(recipe.n_distractors[0], recipe.n_distractors[1] + 1))
    for _ in range(n):
        category = _distractor_category(recipe, target, concepts, rng)
        scale = float(rng.uniform(*recipe.distractor_scale))
        objects.append(place(category, main_radius * scale, category))
    main = place(target, main_radius, target)
    # the main object goes in front half of the time, behind the distractors otherwise
    insert_at = len(objects) if rng.random() < 0.5 else int(rng.integers(0, len(objects) + 1))
    objects.insert(insert_at, main)
    return objects


def render_example(dataset: str, variant: str, seed: int, concept: str, concepts: list[str], split: str, index: int, size: int) -> tuple[Image.Image, list[Annotation]]:
    """Render the ``index``-th image of ``concept`` in ``split`` deterministically."""
    recipe = RECIPES[variant]
    for attempt in range(50):
        rng = np.random.default_rng(_seed(_image_version(variant), dataset, seed, variant, concept, _SPLITS[split], index, attempt))
        objects = compose_scene(concept, concepts, recipe, size, rng)
        image, boxes = render_scene(objects, size, size, rng, clutter=recipe.clutter)
        annotations = [Annotation(bbox, cat) for cat, bbox in boxes]
        if annotations and max(annotations, key=lambda a: a.area).category == concept:
            return image, annotations
    raise DataError(f"synthetic {variant}: could not draw an image labelled {concept!r} in 50 attempts")


def _constant_loader(image: Image.Image):
    return lambda: image.copy()


def load_synth_dataset(spec: Any, *, images_per_concept: int = 8, data_root: Any = None) -> DatasetSplit:
    """Build the split of a synthetic dataset spec (a registry ``DatasetSpec`` or equivalent:
    ``name``, ``concepts`` with ``name``/``init_word``/``anchor_word``, ``heldout_per_concept``, and
    ``options`` with ``variant``, ``image_size`` (default 64) and ``seed`` (default 0))."""
    options = dict(getattr(spec, "options", {}) or {})
    variant = options.get("variant", "coco")
    if variant not in RECIPES:
        raise DataError(f"dataset {spec.name}: unknown synthetic variant {variant!r}; choose one of {sorted(RECIPES)}")
    size = int(options.get("image_size", 64))
    seed = int(options.get("seed", 0))
    concepts = [Concept(c.name, c.init_word, getattr(c, "anchor_word", None)) for c in spec.concepts]
    names = [c.name for c in concepts]
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise DataError(f"dataset {spec.name}: concept(s) {unknown} are not in the synthetic world; known: {sorted(CATALOG)}")
    heldout_n = int(getattr(spec, "heldout_per_concept", 25))
    train: list[Example] = []
    heldout: list[Example] = []
    entries = []
    for concept in names:
        for split, count, bucket in (("train", images_per_concept, train), ("heldout", heldout_n, heldout)):
            for i in range(count):
                image, annotations = render_example(spec.name, variant, seed, concept, names, split, i, size)
                image_id = f"{split}/{concept}/{i:04d}"
                entries.append((image_id, hashlib.sha256(image.tobytes()).hexdigest()))
                bucket.append(Example(image_id, size, size, annotations, loader=_constant_loader(image)))
    manifest = Manifest(
        dataset=spec.name,
        entries=tuple(entries),
        extra=(("generator", f"vwbench.synth/{GENERATOR_VERSION}"), ("variant", variant), ("seed", str(seed)), ("image_size", str(size))),
    )
    return DatasetSplit(spec.name, concepts, train, heldout, manifest)
