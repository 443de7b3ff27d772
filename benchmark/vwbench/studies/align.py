"""The ``align`` family: text-to-concept (Moayeri et al., ICML 2023), as pure computation.

A linear map is fitted from one frozen image encoder's features (the *source*) to CLIP's image
space (the *target*) on unlabelled images; mapped features are then classified zero-shot against
CLIP's text embeddings of the class names, as CLIP's own image features are.

The map is any :class:`~vwbench.transfer.TransferMethod`: image features are presented as
vocabulary-like tables whose "tokens" are image ids (:class:`FeatureTable`), so ``lstsq``,
``ridge``, ``procrustes``, ``knn``, ``random`` and a submitted transfer method are ranked on
feature alignment exactly as they are on word transfer. Rows align by image id, as vocabulary
rows align by token string.

Metrics (:class:`AlignReport`), all on held-out images:

* ``zero_shot_acc_mapped``: accuracy of the mapped source features against CLIP's class texts;
* ``zero_shot_acc_target``: CLIP's own zero-shot accuracy (the ceiling of the method);
* ``linear_probe_acc_source``: a multinomial logistic-regression probe on the source features,
  trained on the labelled training images (what labels buy without CLIP);
* ``map_cosine_heldout`` (and ``map_cosine_train``): mean cosine between mapped and real CLIP
  features; ``agreement_with_target``: share of held-out images labelled as CLIP labels them.

No model code is imported here: features come in as tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from vwbench.transfer.base import TransferMethod


@dataclass
class FeatureTable:
    """Image features keyed by image id; duck-types :class:`~vwbench.transfer.VocabularyLike`
    (row ``i`` of ``matrix`` is the feature of image ``tokens[i]``)."""

    tokens: list[str]
    matrix: torch.Tensor  # [n, d] float32

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.tokens):
            raise ValueError(f"feature table {tuple(self.matrix.shape)} does not match {len(self.tokens)} image ids")


@dataclass(frozen=True)
class AlignSettings:
    """How the alignment is scored. ``prompt`` holds one ``{}`` for the class name (CLIP's
    zero-shot prompt); the linear probe is an L2-penalised multinomial logistic regression on
    standardised source features, fitted by L-BFGS for ``probe_steps`` iterations."""

    prompt: str = "a photo of {}"
    probe_l2: float = 1e-3
    probe_steps: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prompt.count("{}") != 1:
            raise ValueError("align prompt needs exactly one '{}' for the class name")
        if self.probe_l2 < 0 or self.probe_steps < 1:
            raise ValueError("align needs probe_l2 >= 0 and probe_steps >= 1")


@dataclass
class AlignReport:
    """What one alignment run measured (see the module docstring for the metrics)."""

    n_train: int
    n_test: int
    classes: list[str]
    zero_shot_acc_mapped: float
    zero_shot_acc_target: float
    linear_probe_acc_source: float
    map_cosine_heldout: float
    map_cosine_train: float
    agreement_with_target: float
    correct_mapped: list[int]  # per held-out image: 1 when the mapped feature's label is right
    correct_target: list[int]
    correct_probe: list[int]
    test_labels: list[int]
    transfer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float]:
        """The flat float metrics."""
        return {
            "zero_shot_acc_mapped": self.zero_shot_acc_mapped,
            "zero_shot_acc_target": self.zero_shot_acc_target,
            "linear_probe_acc_source": self.linear_probe_acc_source,
            "map_cosine_heldout": self.map_cosine_heldout,
            "map_cosine_train": self.map_cosine_train,
            "agreement_with_target": self.agreement_with_target,
            "mapped_share_of_target": self.zero_shot_acc_mapped / self.zero_shot_acc_target if self.zero_shot_acc_target > 0 else 0.0,
        }

    def per_class(self, which: str = "mapped") -> dict[str, list[int]]:
        """``{class: [0/1 per held-out image of the class]}`` for ``mapped``, ``target`` or ``probe``."""
        correct = {"mapped": self.correct_mapped, "target": self.correct_target, "probe": self.correct_probe}[which]
        out: dict[str, list[int]] = {name: [] for name in self.classes}
        for label, ok in zip(self.test_labels, correct):
            out[self.classes[label]].append(ok)
        return {k: v for k, v in out.items() if v}

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("correct_") and k != "test_labels"}


def zero_shot_labels(features: torch.Tensor, class_text: torch.Tensor) -> torch.Tensor:
    """Index of the class text with the highest cosine to each feature ``[N]``."""
    sims = F.normalize(features.to(torch.float64), dim=-1) @ F.normalize(class_text.to(torch.float64), dim=-1).T
    return sims.argmax(dim=1)


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.to(torch.float64), b.to(torch.float64), dim=-1).mean())


def linear_probe_labels(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, n_classes: int, settings: AlignSettings
) -> torch.Tensor:
    """Fit an L2-penalised multinomial logistic regression on standardised ``train_x`` (float64,
    full-batch L-BFGS, deterministic) and label ``test_x``."""
    x = train_x.detach().to("cpu", torch.float64)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    x = (x - mean) / std
    y = train_y.to("cpu", torch.long)
    torch.manual_seed(settings.seed)  # L-BFGS itself draws nothing; the zero start is fixed
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=settings.probe_steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + settings.probe_l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    test = (test_x.detach().to("cpu", torch.float64) - mean) / std
    with torch.no_grad():
        return (test @ weight + bias).argmax(dim=1)


def run_alignment(
    method: TransferMethod,
    source_train: FeatureTable,
    target_train: FeatureTable,
    source_test: torch.Tensor,
    target_test: torch.Tensor,
    train_labels: list[int],
    test_labels: list[int],
    class_text: torch.Tensor,
    classes: list[str],
    settings: AlignSettings = AlignSettings(),
) -> AlignReport:
    """Fit ``method`` from ``source_train`` to ``target_train`` (rows matched by image id; the
    labels are not used for the map), map the held-out source features, and score everything.

    ``class_text [C, dt]`` are the target's text embeddings of ``settings.prompt`` per class;
    ``train_labels`` (aligned with ``source_train`` rows) train only the linear probe. Raises
    ``ValueError`` when the method cannot fit or map these features (too few images for the
    source width, a method that needs words, mismatched widths)."""
    if class_text.ndim != 2 or class_text.shape[0] != len(classes):
        raise ValueError(f"class_text {tuple(class_text.shape)} does not match {len(classes)} classes")
    if source_test.shape[0] != target_test.shape[0] or source_test.shape[0] != len(test_labels):
        raise ValueError("held-out source features, target features and labels differ in length")
    if len(train_labels) != len(source_train.tokens):
        raise ValueError("training labels and source training features differ in length")
    method.fit(source_train, target_train)
    index = {t: i for i, t in enumerate(source_train.tokens)}
    target_rows = {t: i for i, t in enumerate(target_train.tokens)}
    shared = [t for t in source_train.tokens if t in target_rows]
    mapped_train = method.map(source_train.matrix[[index[t] for t in shared]])
    mapped_test = method.map(source_test)
    if mapped_test.shape[-1] != class_text.shape[1]:
        raise ValueError(f"{method.name} maps into {mapped_test.shape[-1]} dims, the target's text space has {class_text.shape[1]}")
    if not torch.isfinite(mapped_test).all():
        raise ValueError(f"{method.name} produced non-finite mapped features")

    labels = torch.tensor(test_labels, dtype=torch.long)
    pred_mapped = zero_shot_labels(mapped_test, class_text)
    pred_target = zero_shot_labels(target_test, class_text)
    pred_probe = linear_probe_labels(source_train.matrix, torch.tensor(train_labels), source_test, len(classes), settings)

    def correct(pred: torch.Tensor) -> list[int]:
        return (pred == labels).to(torch.int64).tolist()

    def accuracy(pred: torch.Tensor) -> float:
        return float((pred == labels).to(torch.float64).mean()) if len(labels) else 0.0

    return AlignReport(
        n_train=len(shared),
        n_test=len(test_labels),
        classes=list(classes),
        zero_shot_acc_mapped=accuracy(pred_mapped),
        zero_shot_acc_target=accuracy(pred_target),
        linear_probe_acc_source=accuracy(pred_probe),
        map_cosine_heldout=mean_cosine(mapped_test, target_test),
        map_cosine_train=mean_cosine(mapped_train, target_train.matrix[[target_rows[t] for t in shared]]),
        agreement_with_target=float((pred_mapped == pred_target).to(torch.float64).mean()),
        correct_mapped=correct(pred_mapped),
        correct_target=correct(pred_target),
        correct_probe=correct(pred_probe),
        test_labels=list(test_labels),
        transfer=method.describe(),
    )
