"""The helpers a submitter uses outside vwbench, run in this process (the sandbox runs them only in
child processes, which coverage does not see): the reference submissions' adapter of a built-in
method (`vwbench.submissions.reference.BuiltinTransfer`, behind submissions/ref-*) and
`vwbench.submissions.load_model` on the shipped mini zoo (README "Submissions")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vwbench.errors import UserError
from vwbench.submissions.reference import BuiltinTransfer
from vwbench.transfer import get_transfer


class _Rows:
    def __init__(self, tokens, matrix) -> None:
        self.tokens, self.matrix = tokens, matrix


def _planted(n: int = 60, ds: int = 6, dt: int = 4):
    rng = np.random.default_rng(0)
    source = rng.standard_normal((n, ds)).astype(np.float32)
    target = rng.standard_normal((n, dt)).astype(np.float32)
    return source, target, [f"w{i:03d}</w>" for i in range(n)]


@pytest.mark.parametrize("method", ["lstsq", "ridge", "procrustes", "knn", "random"])
def test_a_reference_submission_maps_as_its_builtin_does(method: str) -> None:
    """ref-* run the built-in code through the submission interface: the same numbers."""

    class Transfer(BuiltinTransfer):
        pass

    Transfer.method = method
    source, target, tokens = _planted()
    vectors = np.random.default_rng(1).standard_normal((5, 2, 6)).astype(np.float32)
    submitted = Transfer()
    submitted.fit(source, target, tokens)
    out = submitted.map(vectors)
    builtin = get_transfer(method).fit(_Rows(tokens, torch.from_numpy(source)), _Rows(tokens, torch.from_numpy(target)))
    assert isinstance(out, np.ndarray) and out.shape == (5, 2, 4)
    np.testing.assert_array_equal(out, builtin.map(torch.from_numpy(vectors)).numpy())
    assert submitted.describe()["name"] == method and submitted.describe()["fitted"] is True


def test_the_anchor_reference_uses_the_init_words_it_is_given() -> None:
    class Transfer(BuiltinTransfer):
        method = "anchor"

    source, target, tokens = _planted()
    submitted = Transfer()
    submitted.fit(source, target, tokens)
    out = submitted.map(np.zeros((2, 3, 6), dtype=np.float32), ["w004", "w010"])
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out[0, 2], target[4])
    np.testing.assert_array_equal(out[1, 0], target[10])
    with pytest.raises(ValueError, match="these vectors have none"):
        submitted.map(np.zeros((2, 6), dtype=np.float32))  # no init words: anchor cannot map


def test_load_model_refuses_a_role_the_tier_lacks() -> None:
    from vwbench.submissions import load_model

    with pytest.raises(UserError) as info:
        load_model("dalle", tier="mini")
    assert str(info.value) == "tier mini has no model 'dalle' (its roles: sd, owlv2, clip, judge)"
    with pytest.raises(UserError, match="unknown tier 'tiny'"):
        load_model("clip", tier="tiny")


def test_load_model_gives_the_mini_models_with_their_shared_vocabulary() -> None:
    """README: mini models share one CLIP-format vocabulary, so a map fits on many more shared rows
    than either model has dimensions (the least-squares fit is overdetermined)."""
    from vwbench.submissions import load_model, shared_rows

    clip, judge = load_model("clip", tier="mini"), load_model("judge", tier="mini")
    source, target = clip.vocabulary(), judge.vocabulary()
    assert source.matrix.dtype == torch.float32 and len(source.hash()) == 64
    Y, X, tokens = shared_rows(source, target)
    assert len(tokens) > 10 * max(Y.shape[1], X.shape[1])
    assert Y.shape == (len(tokens), source.matrix.shape[1]) and X.shape == (len(tokens), target.matrix.shape[1])
    assert "circle</w>" in tokens
