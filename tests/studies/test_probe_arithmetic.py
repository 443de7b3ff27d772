"""The probe study's bookkeeping on hand-made ids: how many images of each class go to test
(round(fraction * n), at least 1, at most n - 1), accuracy and chance level (the majority
label's share), and the standardisation of a constant feature."""

from __future__ import annotations

import math

import pytest
import torch

from vwbench.studies.probe import ProbeFeatures, ProbeSettings, _accuracy, _majority, fit_probe, image_split


def features(per_class: list[int], views: int = 2) -> ProbeFeatures:
    """Images of ``len(per_class)`` classes (``per_class[c]`` images of class c), ``views`` rows each."""
    class_of = torch.tensor([c for c, n in enumerate(per_class) for _ in range(n)])
    n_images = class_of.numel()
    image_ids = torch.arange(n_images).repeat_interleave(views)
    transform_ids = torch.arange(views).repeat(n_images)
    return ProbeFeatures(
        features=torch.zeros(n_images * views, 3), transform_ids=transform_ids, group_ids=transform_ids, class_ids=class_of[image_ids],
        image_ids=image_ids, transform_names=tuple(f"t{i}" for i in range(views)), group_names=tuple(f"g{i}" for i in range(views)),
        class_names=tuple(f"c{c}" for c in range(len(per_class))), held_out=(False,) * views,
    )


def n_tested_images(f: ProbeFeatures, test: torch.Tensor) -> dict[int, int]:
    return {c: int(f.image_ids[test & (f.class_ids == c)].unique().numel()) for c in range(len(f.class_names))}


@pytest.mark.parametrize(
    ("per_class", "fraction", "expected"),
    [
        ([10, 10], 0.27, {0: 3, 1: 3}),  # round(2.7) = 3, not int() = 2
        ([3, 3], 0.1, {0: 1, 1: 1}),  # round(0.3) = 0: at least one test image
        ([2, 4], 0.75, {0: 1, 1: 3}),  # round(1.5) = 2 of 2: at most n - 1, one stays to train on
        ([1, 4], 0.5, {0: 0, 1: 2}),  # a class of one image is never tested
    ],
)
def test_split_sizes_per_class(per_class, fraction, expected) -> None:
    f = features(per_class)
    for seed in (0, 1, 2):
        test = image_split(f, fraction, seed)
        assert n_tested_images(f, test) == expected
        for image in f.image_ids.unique():  # every view of an image is on the same side
            assert test[f.image_ids == image].unique().numel() == 1


def test_accuracy_and_chance_level() -> None:
    truth = torch.tensor([0, 0, 0, 1, 2, 0])
    assert _accuracy(torch.tensor([0, 1, 0, 1, 0, 0]), truth) == pytest.approx(4 / 6)
    assert _majority(truth) == pytest.approx(4 / 6)  # the most frequent label's share, not 1 / classes
    empty = torch.tensor([], dtype=torch.long)
    assert math.isnan(_accuracy(empty, empty)) and math.isnan(_majority(empty))


def test_a_constant_feature_is_only_centred() -> None:
    x = torch.tensor([[5.0, 0.0], [5.0, 2.0], [5.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([0, 0, 1, 1])
    probe = fit_probe(x, [y], [2], ProbeSettings(hidden=4, min_steps=1, epochs=1, probe_kind="linear"))
    torch.testing.assert_close(probe.mean, torch.tensor([5.0, 3.0]))
    torch.testing.assert_close(probe.std, torch.tensor([1.0, math.sqrt(5.0)]))  # population std; the constant column keeps 1
