"""What one measurement process of ``vwbench bench`` does (each runs in its own process).

A job is a function of JSON-able arguments returning a JSON-able dict; :mod:`vwbench.perf.child`
runs one by name. Timings are taken inside the job (model loading and data rendering excluded
unless said otherwise); the peak memory of the whole process is taken by the parent
(:mod:`vwbench.perf.harness`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch


class _Recording:
    """A model seen through :func:`~vwbench.training.train_words`: it times ``prepare`` and keeps
    the per-word losses of the first ``keep`` steps. Everything else is the model's own.

    A step may call ``loss`` once per pass of words; ``end_step`` (train_words' progress callback,
    called once per step) closes the step: its losses are those of its passes, in word order."""

    def __init__(self, model: Any, keep: int) -> None:
        self._model = model
        self._keep = keep
        self.losses: list[list[float]] = []
        self.prepare_seconds = 0.0
        self.prepared: Any = None
        self.step_starts: list[float] = []  # perf_counter at each step's first loss call
        self._step: list[torch.Tensor] = []  # this step's pass losses so far

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def prepare(self, data: Any) -> Any:
        start = time.perf_counter()
        self.prepared = self._model.prepare(data)
        _sync(self._model.device)
        self.prepare_seconds = time.perf_counter() - start
        return self.prepared

    def loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not self._step:
            self.step_starts.append(time.perf_counter())
        out = self._model.loss(*args, **kwargs)
        self._step.append(out.detach())
        return out

    def end_step(self, steps: int, mean_loss: float) -> None:
        if len(self.losses) < self._keep:
            self.losses.append([float(v) for v in torch.cat(self._step).float().cpu()])
        self._step = []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _flops(fn: Callable[[], Any]) -> int | None:
    """FLOPs of ``fn()`` as counted by ``torch.utils.flop_counter`` (matmuls, convolutions,
    attention; elementwise work is not counted), or ``None`` where counting fails."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    except Exception:  # a kernel the counter cannot trace: report no FLOP numbers, not a crash
        return None
    return int(counter.get_total_flops())


PEAK_HALF_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),  # dense fp16/bf16 tensor-core peak (NVIDIA datasheets), most specific name first
    ("H100", 989.4e12),
    ("H200", 989.4e12),
    ("A100", 312e12),
)


def peak_flops(device: torch.device, dtype: str) -> float | None:
    """The GPU's dense fp16/bf16 peak FLOP/s when it is known (``None`` on a CPU or in fp32)."""
    if device.type != "cuda" or dtype not in ("fp16", "bf16"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_HALF_FLOPS if key in name), None)


def train_batched(workload: dict, check_steps: int, measure_eval: bool = True) -> dict:
    """vwbench's path: ``train_words`` on all words together (``prepare`` computes the frozen
    image side once). Returns timings, the first ``check_steps`` steps' per-word losses, FLOPs of a
    step, and the evaluation costs the paper projection needs."""
    from vwbench.perf.workload import WorkloadSpec, load_workload
    from vwbench.training.trainer import step_in_passes, train_words, word_generators, word_passes

    w = load_workload(WorkloadSpec(**workload))
    per_pass = w.spec.words_per_pass or _words_per_pass(w)  # chosen before the clock starts (a GPU's probe pass)
    passes = word_passes(w.n_words, per_pass)
    model = _Recording(w.model, check_steps)
    start = time.perf_counter()
    trained = train_words(  # type: ignore[arg-type]
        model, w.data, w.init, w.word_concepts, replace(w.config, words_per_pass=per_pass), word_keys=w.word_keys, progress=model.end_step
    )
    _sync(w.model.device)
    total = time.perf_counter() - start
    steps_seconds = max(total - model.prepare_seconds, 1e-9)
    word_steps = w.n_words * w.config.steps

    generators = word_generators(w.config.seed, w.word_keys)

    def one_step() -> None:
        vectors = trained.vectors.to(w.model.device).clone().requires_grad_(True)
        step_in_passes(w.model, vectors, w.word_concepts, model.prepared, generators, w.config.batch_size, passes)

    flops = _flops(one_step) if w.config.steps else None
    result = {
        "facts": w.facts,
        "words": w.n_words,
        "steps": w.config.steps,
        "seconds_total": total,
        "seconds_prepare": model.prepare_seconds,
        "seconds_steps": steps_seconds,
        "word_steps_per_s": word_steps / total if total > 0 else None,
        "steady_word_steps_per_s": word_steps / steps_seconds,
        "median_step_seconds": _median([b - a for a, b in zip(model.step_starts, model.step_starts[1:])]),
        "words_per_pass": per_pass,
        "losses": model.losses,  # [step][word]
        "final_mean_loss": trained.loss_curve[-1] if trained.loss_curve else None,
        "flops_per_step": flops,
        "achieved_flops_per_s": flops * w.config.steps / steps_seconds if flops else None,
    }
    median_step = result["median_step_seconds"]
    result["median_step_flops_per_s"] = flops / median_step if flops and median_step else None
    peak = peak_flops(w.model.device, w.spec.dtype)
    if peak and result["achieved_flops_per_s"]:
        result["peak_flops_share"] = result["achieved_flops_per_s"] / peak
    if peak and result["median_step_flops_per_s"]:
        result["median_step_peak_flops_share"] = result["median_step_flops_per_s"] / peak
    if measure_eval:
        result["eval"] = _eval_costs(w, trained.vectors)
    return result


def _words_per_pass(w: Any) -> int:
    """What ``train_words`` would choose: on a GPU as many as fit, on a CPU what the model asks
    for (:meth:`ConceptModel.cpu_words_per_pass`)."""
    from vwbench.training.trainer import word_generators, words_per_cpu_pass, words_that_fit_a_pass

    if w.model.device.type != "cuda":
        return words_per_cpu_pass(w.model, w.n_words, w.config.batch_size)
    vectors = w.init.to(w.model.device).requires_grad_(True)
    generators = word_generators(w.config.seed, w.word_keys)
    return words_that_fit_a_pass(w.model, vectors, w.word_concepts, w.model.prepare(w.data), generators, w.config.batch_size)


def _median(values: list[float]) -> float | None:
    """The median (robust to a busy machine's bursts); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _eval_costs(w: Any, vectors: torch.Tensor) -> dict:
    """What evaluating words costs on this model: seconds per word (detection, classification:
    the held-out images' side is computed once for all words, as vwbench does), or seconds per
    generated image per denoising step (generation; the judge's labelling is not included)."""
    from vwbench.models.base import EvalContext

    ev = w.eval_settings
    start = time.perf_counter()
    if w.model.kind == "generation":
        words, per_word = min(2, w.n_words), min(2, ev.generations_per_word)
        w.model.generate(vectors[:words], per_word, ev.inference_steps, 0, ev.guidance_scale, batch_size=ev.batch_size)
        _sync(w.model.device)
        seconds = time.perf_counter() - start
        images = words * per_word
        return {
            "kind": "generation",
            "images": images,
            "inference_steps": ev.inference_steps,
            "guidance_scale": ev.guidance_scale,
            "seconds": seconds,
            "seconds_per_image_step": seconds / (images * ev.inference_steps),
        }
    ctx = EvalContext(concepts=w.split.concept_names, seed=0, batch_size=ev.batch_size)
    with torch.no_grad():
        w.model.predict(vectors, w.word_concepts, w.split.heldout, ctx)
    _sync(w.model.device)
    seconds = time.perf_counter() - start
    return {
        "kind": w.model.kind,
        "words": w.n_words,
        "heldout_images": len(w.split.heldout),
        "seconds": seconds,
        "seconds_per_word": seconds / w.n_words,
    }


def train_naive(workload: dict, words: list[int], steps: int) -> dict:
    """The reference loop (:mod:`vwbench.perf.naive`) on the given words for ``steps`` steps, each
    word drawing from the same random stream as in vwbench's run."""
    from vwbench.perf.naive import NAIVE_LOOPS
    from vwbench.perf.workload import WorkloadSpec, load_workload
    from vwbench.training.trainer import word_generators

    w = load_workload(WorkloadSpec(**workload))
    loop = NAIVE_LOOPS[w.spec.family]
    words = [i for i in words if 0 <= i < w.n_words]
    run = loop(w, words, steps, word_generators(w.config.seed, w.word_keys))
    fresh = word_generators(w.config.seed, w.word_keys)
    flops = _flops(lambda: loop(w, words[:1], 1, fresh)) if words and steps else None
    return {
        "facts": w.facts,
        "words": words,
        "steps": steps,
        "seconds": run.seconds,
        "word_steps": run.word_steps,
        "word_steps_per_s": run.word_steps_per_s,
        "median_step_seconds": _median(run.step_seconds),
        "losses": run.losses,  # [word][step]
        "flops_per_word_step": flops,
        "notes": run.notes,
    }


def synthetic_detections(n_images: int, seed: int = 0):
    """``BoxPredictions`` over ``n_images`` procedurally drawn images: 0 to 3 ground-truth boxes
    each, a noisy detection of most of them and a few false positives, random scores."""
    from vwbench.predictions import BoxPredictions

    rng = np.random.default_rng(seed)
    boxes, scores, gts = [], [], []
    for _ in range(n_images):
        width, height = 640.0, 480.0
        n_gt = int(rng.integers(0, 4))
        size = rng.uniform(20, 200, size=(n_gt, 2))
        corner = rng.uniform(0, 1, size=(n_gt, 2)) * (np.array([width, height]) - size)
        gt = np.concatenate([corner, corner + size], axis=1)
        found = gt[rng.random(n_gt) < 0.8]
        jitter = rng.normal(0, 0.1, size=found.shape) * np.repeat(found[:, 2:] - found[:, :2], 2, axis=1)
        hits = found + jitter
        n_fp = int(rng.integers(0, 6))
        fp_size = rng.uniform(10, 150, size=(n_fp, 2))
        fp_corner = rng.uniform(0, 1, size=(n_fp, 2)) * (np.array([width, height]) - fp_size)
        false = np.concatenate([fp_corner, fp_corner + fp_size], axis=1)
        det = np.concatenate([hits, false]).reshape(-1, 4)
        score = np.concatenate([rng.uniform(0.3, 1.0, len(hits)), rng.uniform(0.0, 0.7, n_fp)])
        boxes.append(torch.tensor(det, dtype=torch.float32))
        scores.append(torch.tensor(score, dtype=torch.float32))
        gts.append(torch.tensor(gt, dtype=torch.float32).reshape(-1, 4))
    return BoxPredictions(target="object", boxes=boxes, scores=scores, gt_boxes=gts)


def map_backend(backend: str, images: int, seed: int = 0, repeats: int = 15) -> dict:
    """Seconds of :func:`vwbench.metrics.detection.detection_map` with one COCO backend on
    :func:`synthetic_detections`: the best of ``repeats`` calls (timeit's rule: other work on the
    machine only ever adds time), after a small warm-up call so that imports are not timed."""
    from vwbench.metrics.detection import detection_map

    predictions = synthetic_detections(images, seed)
    warm = synthetic_detections(20, seed + 1)
    detection_map(warm, backend)  # type: ignore[arg-type]
    times, values = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        current = detection_map(predictions, backend)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        if values is not None and current != values:
            raise RuntimeError(f"{backend} gave {current} then {values} on the same detections")
        values = current
    return {
        "backend": backend,
        "images": images,
        "detections": int(sum(len(s) for s in predictions.scores)),
        "ground_truth": int(sum(len(g) for g in predictions.gt_boxes)),
        "seconds": min(times),
        "median_seconds": _median(times),
        "repeats": len(times),
        "values": values,
    }


JOBS: dict[str, Callable[..., dict]] = {"train-batched": train_batched, "train-naive": train_naive, "map": map_backend}
"""Job name -> function (what ``python -m vwbench.perf.child`` runs)."""
