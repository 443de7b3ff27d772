"""The ``align`` family's computation on planted feature spaces: a known linear relation between
two spaces is recovered by lstsq (mapped features equal the target's, so zero-shot through the map
equals the target's own), and not by the random floor; transfer methods, including a submitted
one run in the sandbox, plug in through the transfer interface."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vwbench.studies.align import AlignSettings, FeatureTable, linear_probe_labels, run_alignment, zero_shot_labels
from vwbench.transfer import get_transfer

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["circle", "square", "star", "ring"]


def planted(n_train: int = 200, n_test: int = 120, ds: int = 12, dt: int = 8, noise: float = 1e-3, seed: int = 0):
    """Source features of 4 classes (class mean + spread); target = source @ A + small noise; the
    target's class texts are the class means mapped by A, so the target classifies zero-shot."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(len(CLASSES), ds, generator=g)
    A = torch.randn(ds, dt, generator=g)

    def draw(n: int, tag: str):
        labels = torch.arange(n) % len(CLASSES)
        source = means[labels] + torch.randn(n, ds, generator=g)
        target = source @ A + noise * torch.randn(n, dt, generator=g)
        return [f"{tag}/{i:04d}" for i in range(n)], source, target, labels.tolist()

    train_ids, source_train, target_train, train_labels = draw(n_train, "train")
    _, source_test, target_test, test_labels = draw(n_test, "heldout")
    return {
        "source_train": FeatureTable(train_ids, source_train), "target_train": FeatureTable(train_ids, target_train),
        "source_test": source_test, "target_test": target_test, "train_labels": train_labels, "test_labels": test_labels,
        "class_text": means @ A, "classes": CLASSES,
    }


def test_lstsq_recovers_a_planted_linear_relation() -> None:
    data = planted()
    report = run_alignment(get_transfer("lstsq"), **data)
    assert report.map_cosine_heldout > 0.9999 and report.map_cosine_train > 0.9999
    # mapped features equal the target's, so zero-shot through the map is the target's own, image for image
    assert report.correct_mapped == report.correct_target
    assert report.agreement_with_target == 1.0
    assert report.zero_shot_acc_mapped == report.zero_shot_acc_target > 0.8
    assert report.linear_probe_acc_source > 0.8  # the classes are separable in the source space too
    assert report.n_train == 200 and report.n_test == 120
    metrics = report.to_dict()
    assert metrics["mapped_share_of_target"] == pytest.approx(1.0)
    assert report.transfer["name"] == "lstsq" and report.transfer["rank"] == 12


def test_train_rows_align_by_image_id_not_by_order() -> None:
    data = planted()
    table = data["target_train"]
    order = torch.randperm(len(table.tokens), generator=torch.Generator().manual_seed(1))
    data["target_train"] = FeatureTable([table.tokens[i] for i in order], table.matrix[order])
    assert run_alignment(get_transfer("lstsq"), **data).map_cosine_heldout > 0.9999


def test_the_random_floor_and_ridge_on_the_same_problem() -> None:
    data = planted()
    floor = run_alignment(get_transfer("random"), **data)
    ridge = run_alignment(get_transfer("ridge"), **data)
    assert floor.map_cosine_heldout < 0.5 < 0.999 < ridge.map_cosine_heldout
    assert floor.zero_shot_acc_mapped < ridge.zero_shot_acc_mapped
    assert ridge.zero_shot_acc_target == floor.zero_shot_acc_target  # the target's own accuracy does not depend on the map


def test_a_method_that_needs_words_or_too_few_images_is_refused() -> None:
    with pytest.raises(ValueError, match="init word"):
        run_alignment(get_transfer("anchor"), **planted())
    with pytest.raises(ValueError, match="fewer than the 13 needed"):
        run_alignment(get_transfer("lstsq"), **planted(n_train=8))
    with pytest.raises(ValueError, match="equal embedding dims"):
        run_alignment(get_transfer("identity"), **planted())


def test_zero_shot_and_linear_probe_helpers() -> None:
    text = torch.eye(3)
    feats = torch.tensor([[0.9, 0.1, 0.0], [0.0, -1.0, 2.0], [5.0, 6.0, 0.0]])
    assert zero_shot_labels(feats, text).tolist() == [0, 2, 1]
    x = torch.cat([torch.randn(30, 4) + 4 * torch.eye(4)[i % 2] for i in range(2)])
    y = torch.tensor([0] * 30 + [1] * 30)
    assert (linear_probe_labels(x, y, x, 2, AlignSettings()) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match="one '\\{\\}'"):
        AlignSettings(prompt="a photo")
    with pytest.raises(ValueError, match="does not match"):
        FeatureTable(["a", "b"], torch.zeros(3, 2))


def test_a_submitted_transfer_method_is_ranked_on_feature_alignment() -> None:
    """The reference lstsq submission, run in the sandbox, aligns features as the built-in does."""
    from vwbench.submissions.transfers import resolve_transfer

    method = resolve_transfer(str(REPO / "submissions" / "ref-lstsq"), "owlv2", "clip")
    data = planted(n_train=60, n_test=20)
    report = run_alignment(method, **data)
    builtin = run_alignment(get_transfer("lstsq"), **data)
    assert report.map_cosine_heldout == pytest.approx(builtin.map_cosine_heldout, abs=1e-5)
    assert report.correct_mapped == builtin.correct_mapped
    assert report.transfer["submission"]["name"] == "ref-lstsq"
