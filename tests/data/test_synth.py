from types import SimpleNamespace as NS

import numpy as np
import pytest

from vwbench.data.coco_format import to_coco
from vwbench.data.synth import load_synth_dataset
from vwbench.errors import DataError

SHAPES = ["circle", "square", "triangle"]


def spec(variant="coco", concepts=SHAPES, seed=0, heldout=3, name=None):
    return NS(
        name=name or f"synth-{variant}",
        concepts=[NS(name=c, init_word=c, anchor_word=None) for c in concepts],
        heldout_per_concept=heldout,
        options={"variant": variant, "seed": seed, "image_size": 48},
    )


@pytest.mark.parametrize("variant", ["imagenet", "dreambooth", "coco", "voc"])
def test_same_seed_same_bytes(variant):
    concepts = SHAPES if variant != "dreambooth" else ["bluestar", "redring", "greenkite"]
    a = load_synth_dataset(spec(variant, concepts), images_per_concept=2)
    b = load_synth_dataset(spec(variant, concepts), images_per_concept=2)
    assert a.manifest.hash == b.manifest.hash
    for x, y in zip(a.train + a.heldout, b.train + b.heldout):
        assert x.load_image().tobytes() == y.load_image().tobytes()
        assert x.annotations == y.annotations


def test_other_seed_other_images():
    a = load_synth_dataset(spec(seed=0), images_per_concept=2)
    b = load_synth_dataset(spec(seed=1), images_per_concept=2)
    assert a.manifest.hash != b.manifest.hash


@pytest.mark.parametrize("variant", ["imagenet", "coco", "voc"])
def test_split_sizes_labels_and_boxes(variant):
    split = load_synth_dataset(spec(variant), images_per_concept=8)
    assert len(split.train) == 8 * len(SHAPES) and len(split.heldout) == 3 * len(SHAPES)
    split.validate(8)
    for concept in SHAPES:
        assert len(split.train_of(concept)) == 8
    for ex in split.train + split.heldout:
        assert ex.load_image().size == (48, 48)
        for a in ex.annotations:
            x, y, w, h = a.bbox
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 48 and y + h <= 48
        # the label is the category of the largest box
        assert ex.concept == max(ex.annotations, key=lambda a: a.area).category


def test_coco_scenes_are_cluttered_and_imagenet_scenes_are_single():
    coco = load_synth_dataset(spec("coco"), images_per_concept=4)
    imagenet = load_synth_dataset(spec("imagenet"), images_per_concept=4)
    assert np.mean([len(e.annotations) for e in coco.train]) > 2.5
    assert all(len(e.annotations) == 1 for e in imagenet.train)


def test_annotations_are_valid_coco():
    from pycocotools.coco import COCO

    split = load_synth_dataset(spec("coco"), images_per_concept=2)
    coco = COCO()
    coco.dataset = to_coco(split.train + split.heldout)
    coco.createIndex()
    assert len(coco.getImgIds()) == len(split.train) + len(split.heldout)
    assert len(coco.getAnnIds()) == sum(len(e.annotations) for e in split.train + split.heldout)
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert ann["area"] > 0


def test_unknown_concept_and_variant_are_clear_errors():
    with pytest.raises(DataError, match="not in the synthetic world"):
        load_synth_dataset(spec(concepts=["unicorn"]))
    with pytest.raises(DataError, match="unknown synthetic variant"):
        load_synth_dataset(spec(variant="mnist"))


def test_too_few_training_images_is_a_clear_error():
    split = load_synth_dataset(spec(), images_per_concept=2)
    with pytest.raises(DataError, match="has 2 training images, 8 are required"):
        split.validate(8)


@pytest.mark.parametrize("size", [48, 64, 97])
def test_masks_are_downsampled_on_their_window_byte_for_byte(size):
    """Only the object's window is resized (the renderer's hot spot): every mask equals the
    Lanczos resize of the whole supersampled canvas, objects cut by the image's edges included."""
    from PIL import Image

    from vwbench.data.synth import world

    rng = np.random.default_rng(size)
    for i, category in enumerate(sorted(world.CATALOG) * 6):
        style = world.CATALOG[category].sample(rng)
        radius = float(rng.uniform(0.05, 0.6)) * size
        obj = world.PlacedObject(
            category, style, float(rng.uniform(-0.1, 1.1)) * size, float(rng.uniform(-0.1, 1.1)) * size,
            radius, float(np.exp(rng.uniform(-0.3, 0.3))), float(rng.uniform(-0.5, 0.5)),
        )
        captured = []
        original = world._downsample
        world._downsample = lambda mask, w, h: captured.append(mask) or original(mask, w, h)
        try:
            window = world._mask(obj, size, size)
        finally:
            world._downsample = original
        whole = captured[0].resize((size, size), Image.Resampling.LANCZOS)
        assert window.tobytes() == whole.tobytes(), (category, i)
