"""Probes on frozen image embeddings: what does an encoder keep about how an image was transformed?

After "Substance or Style" (arXiv 2307.05610). Every image is seen under each transformation of
`vwbench.studies.transforms.TRANSFORMS`; a frozen encoder embeds the views and small probes are
trained on the embeddings to predict

(a) the transformation (31-way),
(b) the transformation's group (10-way), trained on the non-held-out transformations and tested on
    the held-out ones (plus identity, whose group has no other member), and
(c) the image's semantic class,

each with a linear probe and a 2-layer MLP, and with one multi-task MLP whose hidden layer is shared
by three heads. Train and test sets are split by source image, so no view of a test image is ever
trained on. Features are standardised with the statistics of each probe's own training rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vwbench.errors import UserError
from vwbench.studies.transforms import TRANSFORMS, Transform, check_table, run_transform

ProbeKind = Literal["linear", "mlp"]
PROBE_KINDS: tuple[str, ...] = ("linear", "mlp")
IGNORE = -1  # a target that a head skips (the group of a held-out transformation)


@dataclass(frozen=True)
class ProbeSettings:
    """How every probe is trained: Adam on cross-entropy, minibatches drawn with ``seed``.

    Training runs ``epochs`` passes, or more when that is fewer than ``min_steps`` optimizer steps:
    on a small probe set (one batch per epoch) a linear probe at lr 1e-3 needs a few hundred steps
    to converge, while a large set reaches that within its epochs anyway."""

    hidden: int = 2048
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 1024
    epochs: int = 30
    min_steps: int = 500
    weight_decay: float = 0.0
    seed: int = 0
    probe_kind: ProbeKind = "mlp"  # what `fit_probe` builds; `run_probes` trains both kinds

    def __post_init__(self) -> None:
        problems = []
        if self.hidden < 1:
            problems.append(f"hidden must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.min_steps < 0:
            problems.append(f"min_steps must be >= 0, got {self.min_steps}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.probe_kind not in PROBE_KINDS:
            problems.append(f"probe_kind must be one of {', '.join(PROBE_KINDS)}, got {self.probe_kind!r}")
        if problems:
            raise UserError("probe settings: " + "; ".join(problems))


@dataclass
class ProbeFeatures:
    """Embeddings of every (image, transformation) view, one row each, image-major.

    Row ``i * T + t`` is image ``i`` under transformation ``t`` when built by
    `build_probe_features`; the id columns say so explicitly and are what `run_probes` uses."""

    features: torch.Tensor  # [R, d] float32
    transform_ids: torch.Tensor  # [R] int64, index into transform_names
    group_ids: torch.Tensor  # [R] int64, index into group_names
    class_ids: torch.Tensor  # [R] int64, index into class_names
    image_ids: torch.Tensor  # [R] int64, source image of the view
    transform_names: tuple[str, ...]
    group_names: tuple[str, ...]
    class_names: tuple[str, ...]
    held_out: tuple[bool, ...]  # per transformation: tested, never trained on, in task (b)

    def validate(self) -> None:
        """A `UserError` naming the first inconsistency."""
        x = self.features
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserError(f"probe features must be a non-empty [rows, dim] matrix, got shape {tuple(x.shape)}")
        rows = x.shape[0]
        for name in ("transform_ids", "group_ids", "class_ids", "image_ids"):
            ids = getattr(self, name)
            if ids.shape != (rows,):
                raise UserError(f"probe features: {name} has shape {tuple(ids.shape)}, expected ({rows},)")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).any(dim=1).sum())
            raise UserError(f"probe features: {bad} of {rows} embeddings contain NaN or inf; check the encoder (precision, inputs)")
        if len(self.held_out) != len(self.transform_names):
            raise UserError("probe features: held_out needs one flag per transformation")
        for ids, names, what in ((self.transform_ids, self.transform_names, "transform"), (self.group_ids, self.group_names, "group"), (self.class_ids, self.class_names, "class")):
            if int(ids.min()) < 0 or int(ids.max()) >= len(names):
                raise UserError(f"probe features: {what} ids fall outside the {len(names)} {what} names")
        if len(self.class_names) < 2 or int(self.class_ids.unique().numel()) < 2:
            raise UserError("the class probe needs images of at least 2 classes")
        image_class = torch.full((int(self.image_ids.max()) + 1,), -1, dtype=torch.long)
        image_class[self.image_ids] = self.class_ids
        if not torch.equal(image_class[self.image_ids], self.class_ids):
            raise UserError("probe features: views of one image carry different class ids")
        transform_group = torch.full((len(self.transform_names),), -1, dtype=torch.long)
        transform_group[self.transform_ids] = self.group_ids
        if not torch.equal(transform_group[self.transform_ids], self.group_ids):
            raise UserError("probe features: one transformation maps to several groups")


def _view_seed(seed: int, image: int, transform: int) -> int:
    return int(np.random.SeedSequence([seed, image, transform]).generate_state(1)[0])


def build_probe_features(
    images: Sequence[Image.Image],
    class_labels: Sequence[str | int],
    embed: Callable[[list[Image.Image]], torch.Tensor],
    *,
    transforms: Sequence[Transform] = TRANSFORMS,
    seed: int = 0,
    batch_size: int = 64,
) -> ProbeFeatures:
    """Embed every image under every transformation with the frozen encoder ``embed``.

    ``embed`` maps a list of at most ``batch_size`` PIL images to a ``[len, d]`` tensor; it is
    called under `torch.no_grad`. Random transformations are seeded per (seed, image, transform),
    so the result is deterministic for a deterministic encoder."""
    if len(images) == 0:
        raise UserError("no images to probe; give at least 2 images of at least 2 classes")
    if len(images) != len(class_labels):
        raise UserError(f"{len(images)} images but {len(class_labels)} class labels; give one label per image")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    transforms = tuple(transforms)
    check_table(transforms)
    class_names = tuple(sorted({str(c) for c in class_labels}))
    if len(class_names) < 2:
        raise UserError(f"the class probe needs images of at least 2 classes, got only {class_names[0]!r}")
    groups = tuple(dict.fromkeys(t.group for t in transforms))

    chunks: list[torch.Tensor] = []
    views = ((i, t) for i in range(len(images)) for t in range(len(transforms)))
    batch: list[Image.Image] = []
    total = len(images) * len(transforms)
    with torch.no_grad():
        for n, (i, t) in enumerate(views, start=1):
            batch.append(run_transform(transforms[t], images[i], _view_seed(seed, i, t)))
            if len(batch) == batch_size or n == total:
                chunks.append(_embedded(embed(batch), len(batch)))
                batch = []
    if len({c.shape[1] for c in chunks}) != 1:
        raise UserError("the encoder returned embeddings of different widths for different batches")
    features = torch.cat(chunks)

    n_t = len(transforms)
    image_ids = torch.arange(len(images)).repeat_interleave(n_t)
    transform_ids = torch.arange(n_t).repeat(len(images))
    group_of = torch.tensor([groups.index(t.group) for t in transforms])
    class_of = torch.tensor([class_names.index(str(c)) for c in class_labels])
    result = ProbeFeatures(
        features=features,
        transform_ids=transform_ids,
        group_ids=group_of[transform_ids],
        class_ids=class_of[image_ids],
        image_ids=image_ids,
        transform_names=tuple(t.name for t in transforms),
        group_names=groups,
        class_names=class_names,
        held_out=tuple(t.held_out for t in transforms),
    )
    result.validate()
    return result


def _embedded(output: object, rows: int) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != rows:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise UserError(f"the encoder must return a [{rows}, dim] tensor for {rows} images, got {shape}")
    return output.detach().to(device="cpu", dtype=torch.float32)


# --- probes ----------------------------------------------------------------------------------------

class ProbeNet(nn.Module):
    """A linear map, or Linear(d, hidden)-ReLU-Dropout followed by one Linear head per task (the
    hidden layer is shared when there are several heads)."""

    def __init__(self, dim: int, num_classes: Sequence[int], kind: str, hidden: int, dropout: float) -> None:
        super().__init__()
        if kind == "linear":
            self.trunk: nn.Module = nn.Identity()
            width = dim
        else:
            self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
            width = hidden
        self.heads = nn.ModuleList(nn.Linear(width, k) for k in num_classes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(x)
        return [head(h) for head in self.heads]


@dataclass
class FittedProbe:
    """A trained probe with the training rows' standardisation."""

    net: ProbeNet
    mean: torch.Tensor
    std: torch.Tensor

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per head, the predicted class of every row of ``x``."""
        self.net.eval()
        return [logits.argmax(dim=-1) for logits in self.net((x - self.mean) / self.std)]


@contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_probe(x: torch.Tensor, targets: Sequence[torch.Tensor], num_classes: Sequence[int], settings: ProbeSettings) -> FittedProbe:
    """Train a ``settings.probe_kind`` probe with one head per target (loss: the sum of the heads'
    cross-entropies; rows whose target is ``IGNORE`` do not train that head). Deterministic for
    ``settings.seed``; leaves the global RNG and thread count as it found them."""
    if x.shape[0] == 0:
        raise UserError("a probe has no training rows; give more images")
    if len(targets) != len(num_classes) or any(t.shape != (x.shape[0],) for t in targets):
        raise UserError(f"a probe needs one target per head, each with one label per row ({x.shape[0]} rows)")
    x = x.to(torch.float32)
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    # A feature constant on the training rows is only centred (scaling it up would turn float
    # noise, or a direction only test rows use, into huge inputs).
    std = torch.where(std > 1e-6 * (1.0 + mean.abs()), std, torch.ones_like(std))
    z = (x - mean) / std
    n = z.shape[0]
    with _one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = ProbeNet(z.shape[1], num_classes, settings.probe_kind, settings.hidden, settings.dropout)
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        order_rng = torch.Generator().manual_seed(settings.seed)
        net.train()
        batches = -(-n // settings.batch_size)
        for _ in range(max(settings.epochs, -(-settings.min_steps // batches))):
            order = torch.randperm(n, generator=order_rng)
            for start in range(0, n, settings.batch_size):
                rows = order[start : start + settings.batch_size]
                loss = torch.zeros(())
                for logits, target in zip(net(z[rows]), targets):
                    y = target[rows]
                    keep = y != IGNORE
                    if keep.any():
                        loss = loss + F.cross_entropy(logits[keep], y[keep])
                if loss.requires_grad:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
    return FittedProbe(net, mean, std)


def _accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return float((predicted == truth).to(torch.float64).mean()) if truth.numel() else float("nan")


def _majority(truth: torch.Tensor) -> float:
    return float(truth.bincount().max()) / truth.numel() if truth.numel() else float("nan")


def image_split(features: ProbeFeatures, test_fraction: float, seed: int) -> torch.Tensor:
    """Per row, whether its source image is in the test set. Stratified by class: each class with
    at least 2 images puts ``round(test_fraction * n)`` of them (at least 1, at most n - 1) in test."""
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images = features.image_ids.unique()
    image_class = torch.zeros(int(images.max()) + 1, dtype=torch.long)
    image_class[features.image_ids] = features.class_ids
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in range(len(features.class_names)):
        members = images[image_class[images] == c].tolist()
        if len(members) < 2:
            continue
        k = min(len(members) - 1, max(1, round(test_fraction * len(members))))
        test += rng.permutation(members)[:k].tolist()
    if not test:
        raise UserError("too few images to split into train and test; give at least 2 images of some class")
    return torch.isin(features.image_ids, torch.tensor(test))


@dataclass
class ProbeReport:
    """Test accuracies of every probe, chance levels (the most frequent test label's share) and
    sample counts. ``per_transform`` holds, per probe of task (a), each transformation's accuracy."""

    transform_acc_linear: float
    transform_acc_mlp: float
    group_acc_linear: float
    group_acc_mlp: float
    class_acc_linear: float
    class_acc_mlp: float
    transform_acc_multitask: float
    group_acc_multitask: float
    class_acc_multitask: float
    chance_transform: float
    chance_group: float
    chance_class: float
    n_transforms: int
    n_groups: int
    n_classes: int
    n_train_images: int
    n_test_images: int
    n_train: int
    n_test: int
    n_train_group: int
    n_test_group: int
    per_transform: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float | int]:
        """The flat metrics (everything but ``per_transform``), under stable names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "per_transform"}


def run_probes(features: ProbeFeatures, settings: ProbeSettings | None = None, *, test_fraction: float = 0.25) -> ProbeReport:
    """Train and test every probe of the study on ``features`` (see the module docstring)."""
    settings = settings or ProbeSettings()
    features.validate()
    x = features.features
    t_ids, g_ids, c_ids = features.transform_ids, features.group_ids, features.class_ids
    n_t, n_g, n_c = len(features.transform_names), len(features.group_names), len(features.class_names)

    test = image_split(features, test_fraction, settings.seed)
    train = ~test
    held = torch.tensor(features.held_out, dtype=torch.bool)[t_ids]
    has_held = torch.zeros(n_g, dtype=torch.bool)
    has_held[g_ids[held]] = True
    group_train = train & ~held
    group_test = test & (held | ~has_held[g_ids])
    if not group_train.any() or not group_test.any():
        raise UserError("the grouped task has no training or no test rows; check the held-out transformations")

    tasks = {
        "transform": (t_ids, n_t, train, test),
        "group": (g_ids, n_g, group_train, group_test),
        "class": (c_ids, n_c, train, test),
    }
    acc: dict[str, float] = {}
    per_transform: dict[str, dict[str, float]] = {}
    predicted_transform: dict[str, torch.Tensor] = {}
    for kind in PROBE_KINDS:
        kind_settings = dataclasses.replace(settings, probe_kind=kind)
        for task, (y, k, fit_rows, eval_rows) in tasks.items():
            probe = fit_probe(x[fit_rows], [y[fit_rows]], [k], kind_settings)
            (pred,) = probe.predict(x[eval_rows])
            acc[f"{task}_acc_{kind}"] = _accuracy(pred, y[eval_rows])
            if task == "transform":
                predicted_transform[kind] = pred

    # Multi-task: one MLP on all training views. The group head never sees a held-out
    # transformation's group label (its target is IGNORE), so it is tested like task (b).
    group_targets = torch.where(held, torch.full_like(g_ids, IGNORE), g_ids)
    multi = fit_probe(x[train], [t_ids[train], group_targets[train], c_ids[train]], [n_t, n_g, n_c], dataclasses.replace(settings, probe_kind="mlp"))
    pred_t, _, pred_c = multi.predict(x[test])
    (_, pred_g, _) = multi.predict(x[group_test])
    acc["transform_acc_multitask"] = _accuracy(pred_t, t_ids[test])
    acc["group_acc_multitask"] = _accuracy(pred_g, g_ids[group_test])
    acc["class_acc_multitask"] = _accuracy(pred_c, c_ids[test])
    predicted_transform["multitask"] = pred_t

    truth = t_ids[test]
    for probe_name, pred in predicted_transform.items():
        per_transform[probe_name] = {name: _accuracy(pred[truth == i], truth[truth == i]) for i, name in enumerate(features.transform_names)}

    return ProbeReport(
        **acc,
        chance_transform=_majority(t_ids[test]),
        chance_group=_majority(g_ids[group_test]),
        chance_class=_majority(c_ids[test]),
        n_transforms=n_t,
        n_groups=n_g,
        n_classes=n_c,
        n_train_images=int(features.image_ids[train].unique().numel()),
        n_test_images=int(features.image_ids[test].unique().numel()),
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        n_train_group=int(group_train.sum()),
        n_test_group=int(group_test.sum()),
        per_transform=per_transform,
    )
