"""The fracturing constraint: Eq. 4's radius, anchors, and projected training inside the ball."""

from __future__ import annotations

import pytest
import torch

from tests.training.test_trainer import QuadraticModel
from vwbench.errors import UserError
from vwbench.models.base import TrainingData, Vocabulary
from vwbench.training import TrainConfig, train_words
from vwbench.training.fracture import ball, parse_anchors, unit_distance

VOCAB = Vocabulary(
    ["dog</w>", "cat</w>", "cup</w>", "do", "dup</w>"],
    torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 2.0], [0.0, 0.0], [10.0, 0.0]]),
)


def test_unit_distance_is_the_nearest_other_distinct_row():
    # "do" duplicates dog's row (distance 0) and is skipped; cup at distance 2 is the nearest
    assert unit_distance(VOCAB, "dog") == (2.0, "cup</w>")
    assert unit_distance(VOCAB, "cat") == (pytest.approx(13 ** 0.5), "cup</w>")
    with pytest.raises(UserError, match="not a single token"):
        unit_distance(VOCAB, "zebra")


def test_parse_anchors():
    concepts, defaults = ["a", "b"], {"a": "dog", "b": "cat"}
    assert parse_anchors(None, concepts, defaults) == defaults
    assert parse_anchors(["cup"], concepts, defaults) == {"a": "cup", "b": "cup"}
    assert parse_anchors(["a=cup,b=dog"], concepts, defaults) == {"a": "cup", "b": "dog"}
    assert parse_anchors(["b=cup"], concepts, defaults) == {"a": "dog", "b": "cup"}
    with pytest.raises(UserError, match="not one of the dataset's"):
        parse_anchors(["zebra=cup"], concepts, defaults)
    with pytest.raises(UserError, match="concept=word pairs"):
        parse_anchors(["cup,dog"], concepts, defaults)
    with pytest.raises(UserError, match="two anchors \\('star' and 'moon'\\)"):
        parse_anchors(["a=star,a=moon"], concepts, defaults)
    assert parse_anchors(["a=star", "a=star"], concepts, defaults) == {"a": "star", "b": "cat"}  # the same twice is one


def _train_in_ball(delta: float, steps: int = 40):
    anchors = ["dog", "cat"]
    anchor_vectors = VOCAB.rows([a + "</w>" for a in anchors])
    centers, radii, facts = ball(VOCAB, anchor_vectors, anchors, delta)
    seen = []

    class Spy(QuadraticModel):
        def loss(self, vectors, *args, **kwargs):
            seen.append(vectors.detach().clone())
            return super().loss(vectors, *args, **kwargs)

    model = Spy(torch.tensor([[50.0, -50.0], [-50.0, 50.0]]))  # optima far outside every ball
    init = torch.tensor([[[5.0, 5.0]] * 3, [[-5.0, 1.0]] * 3])  # starts outside the balls too
    out = train_words(model, TrainingData([], ["a", "b"]), init, [0, 1], TrainConfig(steps=steps, lr=0.5), ball=(centers, radii))
    return anchor_vectors, facts, seen, out


@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0])
def test_every_step_stays_inside_the_normalised_ball(delta):
    anchor_vectors, facts, seen, out = _train_in_ball(delta)
    units = torch.tensor([facts["dog"]["unit_distance"], facts["cat"]["unit_distance"]])
    assert facts["dog"]["radius"] == pytest.approx(delta * 2.0)
    for vectors in seen + [out.vectors]:
        ratio = (vectors - anchor_vectors[:, None]).norm(dim=-1) / units[:, None]
        assert ratio.max() <= delta + 1e-5
    # pulled toward optima outside the ball, the words end on its surface
    final = (out.vectors - anchor_vectors[:, None]).norm(dim=-1) / units[:, None]
    assert torch.allclose(final, torch.full_like(final, delta), atol=1e-4)


def test_delta_zero_leaves_the_anchor_unchanged():
    anchor_vectors, _, seen, out = _train_in_ball(0.0)
    for vectors in seen + [out.vectors]:
        assert torch.equal(vectors, anchor_vectors[:, None].expand_as(vectors))


def test_negative_delta_is_refused():
    with pytest.raises(UserError, match="delta"):
        ball(VOCAB, VOCAB.rows(["dog</w>"]), ["dog"], -0.1)
