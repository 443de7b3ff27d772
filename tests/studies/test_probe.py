"""The `probe` study's transformations and probes, on planted structure.

Procedural 32x32 images (a shape, the class, on a left-to-right red and top-to-bottom blue ramp, so
flips and rotations change the pixels in a consistent direction) are embedded by encoders whose
knowledge is known by construction: raw pixels keep every geometric and colour change; sorted
pixel values are blind to any pixel permutation (flips, 90/180-degree rotations); one-hot codes of
the class, group or transformation plus noise know exactly that and nothing else.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vwbench.errors import UserError
from vwbench.studies.probe import (
    ProbeFeatures,
    ProbeSettings,
    build_probe_features,
    fit_probe,
    image_split,
    run_probes,
)
from vwbench.studies.transforms import GROUPS, HELD_OUT, TRANSFORMS, apply_transform, check_table

SHAPES = ("circle", "square", "triangle", "cross")
# Small hidden layer and 100 steps at lr 1e-2 (the defaults, 500 steps at 1e-3, reach the same
# accuracies on these sets but take five times longer).
FAST = ProbeSettings(hidden=64, lr=1e-2, min_steps=100)


def shape_images(per_class: int, size: int = 32, seed: int = 0) -> tuple[list[Image.Image], list[str]]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for shape in SHAPES:
        for _ in range(per_class):
            ramp = np.stack([220 * x + 20, 40 + 0 * x, 200 * y + 30], -1) + rng.uniform(-30, 30, 3)
            image = Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            r = int(rng.integers(5, 9))
            cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
            colour = tuple(int(v) for v in rng.integers(120, 256, 3))
            if shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            elif shape == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
            elif shape == "triangle":
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            else:
                draw.rectangle((cx - r, cy - 2, cx + r, cy + 2), fill=colour)
                draw.rectangle((cx - 2, cy - r, cx + 2, cy + r), fill=colour)
            images.append(image)
            labels.append(shape)
    return images, labels


def pixel_encoder(batch: list[Image.Image]) -> torch.Tensor:
    """Keeps everything a 16x16 thumbnail shows."""
    return torch.stack([torch.from_numpy(np.asarray(im.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32).ravel() / 255) for im in batch])


def sorted_encoder(batch: list[Image.Image]) -> torch.Tensor:
    """Every 16th value of each channel's sorted pixels: invariant to any permutation of pixels."""
    rows = [np.sort(np.asarray(im, dtype=np.float32).reshape(-1, 3), axis=0)[::16].T.ravel() / 255 for im in batch]
    return torch.from_numpy(np.stack(rows))


@pytest.fixture(scope="module")
def data() -> tuple[list[Image.Image], list[str]]:
    return shape_images(per_class=10)


@pytest.fixture(scope="module")
def pixel_features(data) -> ProbeFeatures:
    return build_probe_features(*data, pixel_encoder, seed=0, batch_size=100)


@pytest.fixture(scope="module")
def pixel_report(pixel_features):
    return run_probes(pixel_features, FAST)


def planted(template: ProbeFeatures, ids: torch.Tensor, n: int, seed: int = 0) -> ProbeFeatures:
    """``template``'s rows with features that know only ``ids``: a scaled one-hot code plus noise."""
    g = torch.Generator().manual_seed(seed)
    code = 3.0 * torch.nn.functional.one_hot(ids, n).float()
    x = torch.cat([code, torch.zeros(ids.shape[0], 16)], dim=1) + 0.3 * torch.randn(ids.shape[0], n + 16, generator=g)
    return dataclasses.replace(template, features=x)


# --- the table ------------------------------------------------------------------------------------

def test_table_has_31_transforms_in_10_groups_with_valid_held_out():
    names = [t.name for t in TRANSFORMS]
    assert len(TRANSFORMS) == 31 and len(set(names)) == 31
    assert len(GROUPS) == 10 and names[0] == "identity" and TRANSFORMS[0].group == "identity"
    check_table(TRANSFORMS)
    for group in GROUPS:
        members = [t for t in TRANSFORMS if t.group == group]
        held = [t for t in members if t.held_out]
        assert len(held) == (1 if len(members) >= 2 else 0), group
    assert "identity" not in HELD_OUT and len(HELD_OUT) == 9


def test_every_transform_keeps_size_and_mode_and_is_deterministic():
    image = shape_images(1, size=40)[0][0].crop((0, 0, 40, 33))  # not square, odd height
    base = np.asarray(image)
    for t in TRANSFORMS:
        out = apply_transform(t.name, image, seed=5)
        assert out.size == image.size and out.mode == "RGB", t.name
        assert np.array_equal(np.asarray(out), np.asarray(apply_transform(t.name, image, seed=5))), t.name
        assert (t.name == "identity") == np.array_equal(np.asarray(out), base), t.name
    noisy = [np.asarray(apply_transform("gaussian_noise", image, seed=s)) for s in (1, 2)]
    assert not np.array_equal(*noisy)
    assert apply_transform("hflip", image.convert("L")).mode == "RGB"


def test_transforms_do_what_their_names_say():
    image = shape_images(1)[0][0]
    a = np.asarray(image).astype(int)
    assert np.array_equal(np.asarray(apply_transform("hflip", image)), a[:, ::-1])
    assert np.array_equal(np.asarray(apply_transform("rotate180", image)), a[::-1, ::-1])
    assert np.array_equal(np.asarray(apply_transform("invert", image)), 255 - a)
    assert np.array_equal(np.asarray(apply_transform("channel_swap", image)), a[..., ::-1])
    gray = np.asarray(apply_transform("grayscale", image))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_unknown_transform_is_a_user_error_listing_names():
    with pytest.raises(UserError, match="unknown transformation 'swirl'.*hflip"):
        apply_transform("swirl", Image.new("RGB", (8, 8)))


def test_table_with_a_fully_held_out_group_is_rejected():
    bad = [dataclasses.replace(t, held_out=True) if t.group == "noise" else t for t in TRANSFORMS]
    with pytest.raises(UserError, match="noise"):
        check_table(bad)


# --- features ---------------------------------------------------------------------------------------

def test_features_are_image_major_with_consistent_ids(pixel_features, data):
    f = pixel_features
    images, labels = data
    assert f.features.shape == (len(images) * 31, 768) and f.features.dtype == torch.float32
    assert f.transform_ids[:31].tolist() == list(range(31)) and f.image_ids[:31].tolist() == [0] * 31
    assert f.class_names == tuple(sorted(SHAPES))
    assert f.class_ids[31 * 15] == f.class_names.index(labels[15])
    assert [f.group_names[g] for g in f.group_ids[:31].tolist()] == [t.group for t in TRANSFORMS]
    # row 31 * i + t is exactly the encoder applied to transform t of image i
    i, t = 7, TRANSFORMS.index(next(t for t in TRANSFORMS if t.name == "invert"))
    assert torch.equal(f.features[31 * i + t], pixel_encoder([apply_transform("invert", images[i])])[0])


def test_features_are_deterministic_and_batched(data):
    images, labels = data[0][7:13], data[1][7:13]  # 3 circles, 3 squares
    sizes: list[int] = []

    def counting(batch):
        sizes.append(len(batch))
        return pixel_encoder(batch)

    first = build_probe_features(images, labels, counting, seed=3, batch_size=50)
    assert max(sizes) == 50 and sum(sizes) == 6 * 31
    second = build_probe_features(images, labels, pixel_encoder, seed=3, batch_size=7)
    assert torch.equal(first.features, second.features)


def test_split_is_by_image_and_stratified(pixel_features):
    test = image_split(pixel_features, 0.25, seed=0)
    f = pixel_features
    train_images, test_images = set(f.image_ids[~test].tolist()), set(f.image_ids[test].tolist())
    assert train_images.isdisjoint(test_images) and len(test_images) == 8  # round(0.25 * 10) per class
    assert sorted(f.class_ids[test].unique().tolist()) == [0, 1, 2, 3]


# --- planted structure --------------------------------------------------------------------------------

def test_pixel_encoder_keeps_transformations(pixel_report):
    r = pixel_report
    assert r.chance_transform == pytest.approx(1 / 31) and r.chance_group == pytest.approx(0.1)
    for kind in ("linear", "mlp", "multitask"):
        assert getattr(r, f"transform_acc_{kind}") > 0.5, kind  # chance is 0.032
        for name in ("hflip", "vflip", "grayscale", "invert"):
            assert r.per_transform[kind][name] >= 0.75, (kind, name)


def test_report_counts_and_names(pixel_report):
    d = pixel_report.to_dict()
    for task in ("transform", "group", "class"):
        for kind in ("linear", "mlp", "multitask"):
            assert 0.0 <= d[f"{task}_acc_{kind}"] <= 1.0
    assert (d["n_train_images"], d["n_test_images"]) == (32, 8)
    assert (d["n_train"], d["n_test"]) == (32 * 31, 8 * 31)
    assert (d["n_train_group"], d["n_test_group"]) == (32 * 22, 8 * 10)  # 9 held out; identity + 9 in test
    assert "per_transform" not in d and all(isinstance(v, (int, float)) for v in d.values())


def test_run_is_deterministic(pixel_features):
    f = planted(pixel_features, pixel_features.class_ids, len(pixel_features.class_names))
    quick = dataclasses.replace(FAST, min_steps=20)
    first, second = run_probes(f, quick), run_probes(f, quick)
    assert first.to_dict() == second.to_dict() and first.per_transform == second.per_transform
    assert run_probes(f, dataclasses.replace(quick, seed=1)).to_dict() != first.to_dict()


def test_flip_invariant_encoder_cannot_tell_hflip_from_identity(data, pixel_features):
    images, labels = data
    f = build_probe_features(images, labels, sorted_encoder, seed=0, batch_size=200)
    hflip = [t.name for t in TRANSFORMS].index("hflip")
    ident, flipped = f.features[f.transform_ids == 0], f.features[f.transform_ids == hflip]
    assert torch.equal(ident, flipped)  # the invariance is exact, so no probe can separate them

    def two_way(features: ProbeFeatures) -> float:
        rows = (features.transform_ids == 0) | (features.transform_ids == hflip)
        test = image_split(features, 0.25, seed=0)
        y = (features.transform_ids == hflip).long()
        probe = fit_probe(features.features[rows & ~test], [y[rows & ~test]], [2], FAST)
        (pred,) = probe.predict(features.features[rows & test])
        return float((pred == y[rows & test]).float().mean())

    assert two_way(f) == 0.5  # each test image: both views get the same answer
    assert two_way(pixel_features) >= 0.95  # control: raw pixels separate them


def test_class_only_encoder_knows_class_and_no_transformation(pixel_features):
    f = planted(pixel_features, pixel_features.class_ids, len(pixel_features.class_names))
    r = run_probes(f, FAST)
    for kind in ("linear", "mlp", "multitask"):
        assert getattr(r, f"class_acc_{kind}") >= 0.95, kind
        assert getattr(r, f"transform_acc_{kind}") < 0.1, kind  # chance 0.032
        assert getattr(r, f"group_acc_{kind}") < 0.25, kind  # chance 0.1


def test_group_task_tests_only_unseen_transformations(pixel_features):
    n_g, n_t = len(pixel_features.group_names), len(pixel_features.transform_names)
    # knows the group: generalises to held-out members; cannot tell members of a group apart
    by_group = run_probes(planted(pixel_features, pixel_features.group_ids, n_g), FAST)
    for kind in ("linear", "mlp", "multitask"):
        assert getattr(by_group, f"group_acc_{kind}") >= 0.95, kind
        assert getattr(by_group, f"transform_acc_{kind}") < 0.5, kind  # within-group guessing: ~10/31
    # knows the transformation only: a held-out one is a direction the group probe never saw
    by_transform = run_probes(planted(pixel_features, pixel_features.transform_ids, n_t), FAST)
    for kind in ("linear", "mlp", "multitask"):
        assert getattr(by_transform, f"transform_acc_{kind}") >= 0.95, kind
        assert getattr(by_transform, f"group_acc_{kind}") < 0.5, kind


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_inputs_are_user_errors(data, pixel_features):
    images, labels = data
    with pytest.raises(UserError, match="no images"):
        build_probe_features([], [], pixel_encoder)
    with pytest.raises(UserError, match="labels"):
        build_probe_features(images[:3], labels[:2], pixel_encoder)
    with pytest.raises(UserError, match="at least 2 classes"):
        build_probe_features(images[:3], labels[:3], pixel_encoder)
    with pytest.raises(UserError, match="NaN"):
        build_probe_features(images[8:12], labels[8:12], lambda b: torch.full((len(b), 4), float("nan")))
    with pytest.raises(UserError, match="tensor"):
        build_probe_features(images[8:12], labels[8:12], lambda b: torch.zeros(1, 4))
    broken = pixel_features.features.clone()
    broken[5, 3] = float("inf")
    with pytest.raises(UserError, match="NaN or inf"):
        run_probes(dataclasses.replace(pixel_features, features=broken), FAST)
    with pytest.raises(UserError, match="at least 2 classes"):
        run_probes(dataclasses.replace(pixel_features, class_ids=torch.zeros_like(pixel_features.class_ids)), FAST)
    with pytest.raises(UserError, match="test_fraction"):
        run_probes(pixel_features, FAST, test_fraction=1.0)
    with pytest.raises(UserError, match="probe_kind"):
        ProbeSettings(probe_kind="forest")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="epochs"):
        ProbeSettings(epochs=0)
