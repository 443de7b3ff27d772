"""The align metrics on hand-computed features, with a map that returns its input: zero-shot
against class texts of unequal norms (cosine, not dot product), accuracies, agreement with the
target, the mapped/target share, per-row mean cosines (train rows matched by image id), the
per-class breakdown, and the linear probe's standardisation."""

from __future__ import annotations

import math

import pytest
import torch

from vwbench.studies.align import AlignSettings, FeatureTable, linear_probe_labels, mean_cosine, run_alignment, zero_shot_labels


class Unchanged:
    """A transfer method whose map is the identity (source and target share their width)."""

    name = "unchanged"

    def fit(self, source, target) -> None:
        self.fitted = (list(source.tokens), list(target.tokens))

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone().to(torch.float32)

    def describe(self) -> dict:
        return {"name": self.name}


def report():
    source_train = FeatureTable(["i1", "i2", "i3", "only-source"], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, -1.0]]))
    # the same images in another order (plus one the source lacks): rows pair by id, not position
    target_train = FeatureTable(["i3", "only-target", "i1", "i2"], torch.tensor([[2.0, 2.0], [-1.0, 3.0], [3.0, 0.0], [0.0, 0.5]]))
    source_test = torch.tensor([[1.0, 0.9], [1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    target_test = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    class_text = torch.tensor([[0.1, 0.0], [0.0, 1.0]])  # unequal norms: a dot product would pick b for row 0
    return run_alignment(Unchanged(), source_train, target_train, source_test, target_test,
                         train_labels=[0, 1, 1, 0], test_labels=[0, 0, 1, 1], class_text=class_text, classes=["a", "b"])


def test_zero_shot_is_by_cosine_to_the_class_texts() -> None:
    assert zero_shot_labels(torch.tensor([[1.0, 0.9], [0.2, 1.0]]), torch.tensor([[0.1, 0.0], [0.0, 1.0]])).tolist() == [0, 1]


def test_alignment_metrics_by_hand() -> None:
    r = report()
    # mapped labels [a, a, b, a]; the target's own [b, b, b, a]; truth [a, a, b, b]
    assert (r.correct_mapped, r.correct_target) == ([1, 1, 1, 0], [0, 0, 1, 0])
    assert r.zero_shot_acc_mapped == pytest.approx(0.75) and r.zero_shot_acc_target == pytest.approx(0.25)
    assert r.agreement_with_target == pytest.approx(0.5)
    assert r.to_dict()["mapped_share_of_target"] == pytest.approx(3.0)
    expected_heldout = (0.9 / math.sqrt(1.81) + 0.0 + 1.0 + 1.0 / math.sqrt(1.25)) / 4
    assert r.map_cosine_heldout == pytest.approx(expected_heldout)
    assert r.map_cosine_train == pytest.approx(1.0)  # i1, i2, i3 point the same way in both tables
    assert (r.n_train, r.n_test) == (3, 4)
    assert r.per_class("mapped") == {"a": [1, 1], "b": [1, 0]}
    assert r.per_class("target") == {"a": [0, 0], "b": [1, 0]}


def test_mapped_share_is_zero_when_the_target_gets_nothing_right() -> None:
    r = report()
    r.zero_shot_acc_target = 0.0
    assert r.to_dict()["mapped_share_of_target"] == 0.0


def test_mean_cosine_is_per_row() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, -1.0]])
    assert mean_cosine(a, b) == pytest.approx(0.5)  # rows: 1 and 0


def test_linear_probe_standardises_a_tiny_scale_feature() -> None:
    """The only informative feature is 1e-4 in scale: unstandardised, the L2 penalty would keep
    its weight near zero; standardised, it separates the classes."""
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1] * 20)
    x = torch.stack([1e-4 * (2.0 * y - 1.0) + 1e-6 * torch.randn(40, generator=g), torch.randn(40, generator=g)], dim=1)
    assert torch.equal(linear_probe_labels(x, y, x, 2, AlignSettings(probe_l2=1e-2)), y)
