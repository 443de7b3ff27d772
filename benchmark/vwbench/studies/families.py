"""The three study families behind one interface: turn a resolved task's images and frozen
encoders into a :class:`StudyOutcome` (headline metric, all metrics, tables).

Each family class has ``settings(values) -> dict`` (the effective settings: the task's values
over the compute module's defaults, JSON-ready; part of the result's cache key) and
``run(ctx) -> StudyOutcome``. The computing is done by the pure modules: :mod:`.probe` (with
:mod:`.transforms`), :mod:`.align` (with the transfer methods), :mod:`.sae`. Storing, caching
and provenance are :mod:`vwbench.studies.runner`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from vwbench.data.base import DatasetSplit, Example
from vwbench.errors import UserError
from vwbench.progress import Reporter
from vwbench.studies.encoders import FrozenEncoder


@dataclass
class StudyContext:
    """What a family's ``run`` gets: the task, its images, its encoders by role (``encoder``, or
    ``source`` and ``target``), the effective settings, the transfer (paired families) and a
    stage timer."""

    spec: Any  # vwbench.registry.studies.StudySpec
    split: DatasetSplit
    encoders: dict[str, FrozenEncoder]
    settings: dict[str, Any]
    reporter: Reporter
    timer: Any  # a callable context manager: with timer("stage"): ...
    transfer: Any = None  # vwbench.submissions.run_support.PreparedTransfer


@dataclass
class StudyOutcome:
    """One study run's numbers. ``metric``/``value``/``ci95`` is the headline (higher is
    better, in [0, 1]); ``metrics`` every flat metric; ``tables`` lists of rows for reports."""

    metric: str
    value: float
    ci95: tuple[float, float]
    metrics: dict[str, float]
    per_concept: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    method: str = ""  # the result's ``transfer`` field: the map's name, or the family's method
    method_params: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    n_trials: int = 1


def bernoulli_t_interval(share: float, n: int) -> tuple[float, float]:
    """The Student-t 95% interval of the mean of ``n`` 0/1 values whose mean is ``share`` (what
    :func:`vwbench.metrics.summary.t_interval` gives on the 0/1 vector), clipped to [0, 1]."""
    from scipy import stats

    if n < 2 or not math.isfinite(share):
        return (share, share)
    s = math.sqrt(max(0.0, share * (1 - share)) * n / (n - 1))
    half = float(stats.t.ppf(0.975, df=n - 1)) * s / math.sqrt(n)
    return (max(0.0, share - half), min(1.0, share + half))


@contextmanager
def _stage(ctx: StudyContext, name: str, label: str) -> Iterator[None]:
    with ctx.timer(name), ctx.reporter.stage(label) as stage:
        yield
        stage.advance(1)


def _images(examples: Sequence[Example]) -> list[Image.Image]:
    return [e.load_image() for e in examples]


def _settings(cls: type, values: dict[str, Any], what: str) -> Any:
    """``cls(**values)`` with list values as tuples; bad values are one-line errors."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{what} settings: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} settings: {exc}") from exc


def _json_ready(settings: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}


# ---- probe ---------------------------------------------------------------------------------------

_PROBE_EXTRA = {"test_fraction": 0.25, "embed_batch_size": 64}  # run_probes / build_probe_features arguments


class ProbeStudy:
    """Linear and MLP probes on one encoder's embeddings of every image under every transformation."""

    name = "probe"
    headline = "transform_acc_mlp"

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        from vwbench.studies.probe import ProbeSettings

        extra = {k: values.get(k, v) for k, v in _PROBE_EXTRA.items()}
        core = _settings(ProbeSettings, {k: v for k, v in values.items() if k not in _PROBE_EXTRA}, "probe")
        return {**_json_ready(core), **extra}

    def run(self, ctx: StudyContext) -> StudyOutcome:
        from vwbench.studies.probe import ProbeSettings, build_probe_features, run_probes
        from vwbench.studies.transforms import TRANSFORMS

        values = dict(ctx.settings)
        extra = {k: values.pop(k) for k in _PROBE_EXTRA}
        settings = _settings(ProbeSettings, values, "probe")
        encoder = ctx.encoders["encoder"]
        examples = ctx.split.train + ctx.split.heldout
        with _stage(ctx, "embed", f"embed {len(examples)} images x {len(TRANSFORMS)} transformations with {encoder.name}"):
            features = build_probe_features(
                _images(examples), [e.concept for e in examples], encoder.embed_images, seed=settings.seed, batch_size=int(extra["embed_batch_size"]),
            )
        with _stage(ctx, "probes", "train and test the probes"):
            report = run_probes(features, settings, test_fraction=float(extra["test_fraction"]))
        metrics = {k: float(v) for k, v in report.to_dict().items()}
        value = metrics[self.headline]
        rows = [
            {"transform": t.name, "group": t.group, "held_out": t.held_out, **{probe: accs.get(t.name, float("nan")) for probe, accs in report.per_transform.items()}}
            for t in TRANSFORMS
        ]
        return StudyOutcome(
            metric=self.headline, value=value, ci95=bernoulli_t_interval(value, int(report.n_test)), metrics=metrics,
            tables={"per_transform": rows}, method="probe", method_params={"kinds": ["linear", "mlp", "multitask"]},
            steps=settings.epochs, n_trials=1,
        )


# ---- align ---------------------------------------------------------------------------------------


class AlignStudy:
    """Fit a transfer method from the source encoder's image features to the target CLIP's, then
    classify held-out images zero-shot through the map."""

    name = "align"
    headline = "zero_shot_acc_mapped"

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        from vwbench.studies.align import AlignSettings

        return _json_ready(_settings(AlignSettings, values, "align"))

    def run(self, ctx: StudyContext) -> StudyOutcome:
        import torch

        from vwbench.metrics.summary import summarize
        from vwbench.studies.align import AlignSettings, FeatureTable, run_alignment

        settings = _settings(AlignSettings, ctx.settings, "align")
        source, target = ctx.encoders["source"], ctx.encoders["target"]
        if target.embed_texts is None:
            raise UserError(f"{ctx.spec.name}: the target {target.name} has no text embeddings; align maps into a CLIP-like image-text space")
        split = ctx.split
        classes = split.concept_names
        index = {c: i for i, c in enumerate(classes)}
        with _stage(ctx, "embed", f"embed {len(split.train) + len(split.heldout)} images with {source.name} and {target.name}"):
            train_images, test_images = _images(split.train), _images(split.heldout)
            ids = [e.image_id for e in split.train]
            source_train = FeatureTable(ids, source.embed_images(train_images))
            target_train = FeatureTable(ids, target.embed_images(train_images))
            source_test, target_test = source.embed_images(test_images), target.embed_images(test_images)
            class_text = target.embed_texts([settings.prompt.format(c) for c in classes])
        method = ctx.transfer.method
        with _stage(ctx, "align", f"fit {ctx.transfer.label} on {len(ids)} unlabelled images and evaluate"):
            try:
                report = run_alignment(
                    method, source_train, target_train, source_test, target_test,
                    [index[e.concept] for e in split.train], [index[e.concept] for e in split.heldout], class_text, classes, settings,
                )
            except ValueError as exc:
                raise UserError(f"{ctx.spec.name} on {split.name} with transfer {ctx.transfer.label}: {exc}") from exc
            except torch.linalg.LinAlgError as exc:
                raise UserError(f"{ctx.spec.name}: transfer {ctx.transfer.label} failed to fit ({exc})") from exc
        summary = summarize(report.per_class("mapped"))
        per = {which: report.per_class(which) for which in ("mapped", "target", "probe")}
        rows = [
            {"class": name, **{which: float(np.mean(values[name])) for which, values in per.items()}, "n": len(per["mapped"][name])}
            for name in classes if name in per["mapped"]
        ]
        return StudyOutcome(
            metric=self.headline, value=summary.value, ci95=(max(0.0, summary.ci95[0]), min(1.0, summary.ci95[1])),
            metrics=report.to_dict(), per_concept=summary.per_concept, tables={"per_class": rows},
            method=ctx.transfer.label, method_params={**method.describe(), "n_train": report.n_train, "n_test": report.n_test},
            steps=0, n_trials=1,
        )


# ---- sae -----------------------------------------------------------------------------------------


def caption(example: Example, max_objects: int) -> str:
    """"a photo of a star, a ring and a circle": the image's object categories, largest box
    first, each named once, up to ``max_objects``."""
    names: list[str] = []
    for a in sorted(example.annotations, key=lambda a: -a.area):
        if a.category not in names:
            names.append(a.category)
    named = [("an " if n[:1].lower() in "aeiou" else "a ") + n for n in names[:max_objects]]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"a photo of {listed}"


class SaeStudy:
    """Sparse autoencoders on one CLIP's image and caption embeddings of the dataset's images."""

    name = "sae"
    headline = "stability/seed/mean"

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        from vwbench.studies.sae import SaeSettings

        return _settings(SaeSettings, values, "sae").to_dict()

    def run(self, ctx: StudyContext) -> StudyOutcome:
        from vwbench.metrics.summary import t_interval
        from vwbench.studies.sae import SaeSettings, run_sae_study

        settings = _settings(SaeSettings, ctx.settings, "sae")
        encoder = ctx.encoders["encoder"]
        if encoder.embed_texts is None:
            raise UserError(f"{ctx.spec.name}: encoder {encoder.name} has no text embeddings; the sae study needs a CLIP-like image-text model")
        examples = ctx.split.train + ctx.split.heldout
        captions = [caption(e, ctx.spec.data.caption_objects) for e in examples]
        with _stage(ctx, "embed", f"embed {len(examples)} image-caption pairs with {encoder.name}"):
            image_emb = encoder.embed_images(_images(examples))
            text_emb = encoder.embed_texts(captions)
        with _stage(ctx, "sae", "train the sparse autoencoders"):
            report = run_sae_study(image_emb, text_emb, settings)
        metrics = {k: float(v) for k, v in report.metrics().items()}
        seed_rows = [r.mean for r in report.stability if r.comparison == "seed"]
        # one pair of seeds (n_seeds 2) has no estimable spread: the whole range, not [x, x]
        low, high = t_interval(seed_rows) if len(seed_rows) > 1 else (0.0, 1.0)
        full = report.to_dict()
        bridges = full["bridges"]
        return StudyOutcome(
            metric=self.headline, value=metrics[self.headline], ci95=(max(0.0, low), min(1.0, high)), metrics=metrics,
            tables={
                "sweep": full["sweep"],
                "stability": full["stability"],
                "modality": [full["modality"]],
                "bridges": bridges,
                "captions": [{"caption": c, "pairs": n} for c, n in _most_common(captions, 10)],
            },
            method="sae", method_params={"kinds": list(settings.kinds), "n_concepts": report.n_concepts, "reference": full["reference"], "n_pairs": report.n_pairs},
            steps=settings.steps, n_trials=settings.n_seeds,
        )


def _most_common(items: Sequence[str], k: int) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
