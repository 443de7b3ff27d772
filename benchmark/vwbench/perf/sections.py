"""The sections of ``vwbench bench``: each runs its measured things side by side, one process each,
checks that both sides compute the same numbers, and gives the speed ratio.

| section | vwbench | reference | check | target |
|---|---|---|---|---|
| detection | batched words on cached region features (mini-owlv2) | whole OWLv2 every step, one word at a time | losses equal to 1e-4 | >= 50x word-steps/s |
| classification | batched words on cached image features (mini-clip) | whole CLIP every step, one word at a time | losses equal to 1e-4 | >= 50x |
| generation | batched words on cached VAE latents (mini-sd) | diffusers' textual-inversion recipe | loss curves equal to 1e-4 | >= 3x |
| map | faster-coco-eval | pycocotools | identical mAP | >= 5x |
| suite | the suite on a warm cache | the same suite cold | — | — |

The peak memory of every process is reported with them (the mini suite must stay under 4 GiB on
a CPU).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vwbench.errors import UserError
from vwbench.perf.harness import BenchError, Measurement, child_env, run_job, run_process

TRAINING_SECTIONS: dict[str, str] = {"detection": "owlv2", "classification": "clip", "generation": "sd"}
"""Training section -> the model family it trains."""
SECTIONS: tuple[str, ...] = ("detection", "classification", "generation", "map", "suite")
TARGETS: dict[str, float] = {"detection": 50.0, "classification": 50.0, "generation": 3.0, "map": 5.0}
LOSS_TOLERANCE = 1e-4
CPU_MEMORY_TARGET_MB = 4096.0  # 4 GiB: the mini suite's budget on a CPU
GENERATION_STEPS = 10  # batched generation steps measured by default (a mini-sd step of 72 words takes seconds)


@dataclass(frozen=True)
class BenchOptions:
    """Everything a bench run needs (the command line fills it; see ``vwbench bench --help``)."""

    sections: tuple[str, ...] = ("detection", "classification", "generation", "map", "suite")
    quick: bool = False
    threads: int | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    tier: str | None = None  # None: the dataset's own checkpoints; "paper": random paper-tier models (GPU)
    compile: bool = False  # vwbench's side only: torch.compile its step modules (the reference stays the plain recipe)
    words_per_pass: int | None = None  # vwbench's side only: words per forward/backward (None: all on a CPU, as many as fit on a GPU)
    tasks_dir: str | None = None
    train_dataset: str = "synth-imagenet"
    concepts: int | None = None
    trials: int | None = None
    steps: int | None = None
    naive_words: int = 6
    naive_steps: int = 3
    map_images: int = 1000
    suite: str = "mini"
    suite_datasets: tuple[str, ...] | None = None  # None: every dataset of the suite
    isolate: bool = True  # False runs jobs in this process (tests; no memory numbers)
    log: Callable[[str], None] = field(default=lambda message: None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k not in ("log", "isolate")}


def parse_sections(text: str | None) -> tuple[str, ...]:
    """``"detection,map"`` -> ``("detection", "map")`` in the canonical order; unknown names are a
    :class:`UserError`."""
    if text is None:
        return SECTIONS
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise UserError(f"unknown --sections {', '.join(unknown) or repr(text)}; choose from {', '.join(SECTIONS)} (comma-separated)")
    return tuple(s for s in SECTIONS if s in names)


def spread(n_words: int, k: int) -> list[int]:
    """``k`` word indices spread evenly over ``0 .. n_words-1`` (first and last included)."""
    k = max(1, min(k, n_words))
    if k == 1:
        return [0]
    return sorted({round(i * (n_words - 1) / (k - 1)) for i in range(k)})


def _training_steps(name: str, options: BenchOptions) -> int | None:
    if options.steps is not None:
        return options.steps
    if options.quick:
        return 3
    return GENERATION_STEPS if name == "generation" else None  # None: the task's own steps


def _training_size(name: str, options: BenchOptions) -> tuple[int | None, int | None]:
    """Concepts and trials of a training section. The paper-tier models on a GPU default to one trial,
    and generation to 2 concepts: 16 items of SD 2.1 at 768 px already fill most of a large GPU."""
    concepts, trials = options.concepts, options.trials
    if options.tier == "paper":
        trials = 1 if trials is None else trials
        concepts = 2 if concepts is None and name == "generation" else concepts
    return concepts, trials


def run_training_section(name: str, options: BenchOptions) -> dict[str, Any]:
    """vwbench's batched training vs the reference loop on one family; losses compared step by step."""
    from vwbench.perf.workload import WorkloadSpec

    family = TRAINING_SECTIONS[name]
    concepts, trials = _training_size(name, options)
    spec = WorkloadSpec(
        family=family, dataset=options.train_dataset, concepts=concepts, trials=trials,
        steps=_training_steps(name, options), tasks_dir=options.tasks_dir, device=options.device, dtype=options.dtype, tier=options.tier,
    ).to_json()
    options.log(f"{name}: vwbench's batched training ({family}{', compiled' if options.compile else ''})")
    # A compiled model would recompile for the evaluation's other shapes (minutes): its evaluation
    # costs come from an uncompiled run.
    batched_spec = {**spec, "compile": options.compile, "words_per_pass": options.words_per_pass}
    batched_args = {"workload": batched_spec, "check_steps": options.naive_steps, "measure_eval": not options.compile}
    batched = run_job("train-batched", batched_args, threads=options.threads, isolate=options.isolate)
    n_words = int(batched.result["words"])
    words = spread(n_words, options.naive_words)
    options.log(f"{name}: the reference loop ({len(words)} words x {options.naive_steps} steps)")
    naive = run_job("train-naive", {"workload": spec, "words": words, "steps": options.naive_steps}, threads=options.threads, isolate=options.isolate)
    compared = min(options.naive_steps, len(batched.result["losses"]))
    diffs = [
        abs(naive.result["losses"][j][s] - batched.result["losses"][s][w]) for j, w in enumerate(words) for s in range(compared)
    ]
    max_diff = max(diffs) if diffs else None
    fast, slow = batched.result["word_steps_per_s"], naive.result["word_steps_per_s"]
    ratio = fast / slow if fast and slow else None
    batched_step, naive_step = batched.result.get("median_step_seconds"), naive.result.get("median_step_seconds")
    median_ratio = naive_step * n_words / batched_step if batched_step and naive_step else None
    return {
        "name": name,
        "family": family,
        "facts": batched.result["facts"],
        "vwbench": batched.to_json(),
        "reference": naive.to_json(),
        "check": {"what": "per-word loss, first steps", "steps_compared": compared, "words_compared": words, "max_abs_diff": max_diff,
                  "tolerance": LOSS_TOLERANCE, "ok": max_diff is not None and max_diff <= LOSS_TOLERANCE},
        "ratio": ratio,
        "median_step_ratio": median_ratio,  # per word-step, median step times: robust to a busy machine
        "target": TARGETS[name],
        "meets_target": ratio is not None and ratio >= TARGETS[name],
    }


# Each mAP backend runs in this many fresh processes: the best call's time differs from process to
# process by more than between calls (faster-coco-eval's best of 15 calls took 0.037 to 0.047 s in
# six processes on one machine), so one process per side made the ratio swing by +-15%.
MAP_PROCESSES = 3


def best_of_processes(runs: Sequence[Measurement]) -> Measurement:
    """One backend's measurement over several processes: the best call of all, the median of the
    processes' median calls, every call counted, the largest peak memory; the values must agree."""
    values = [m.result["values"] for m in runs]
    if any(v != values[0] for v in values[1:]):
        raise RuntimeError(f"{runs[0].result['backend']} gave different values in different processes: {values}")
    best = min(runs, key=lambda m: m.result["seconds"])
    result = {
        **best.result,
        "median_seconds": statistics.median(m.result["median_seconds"] for m in runs),
        "repeats": sum(m.result["repeats"] for m in runs),
        "processes": len(runs),
    }
    rss = [m.peak_rss_mb for m in runs if m.peak_rss_mb is not None]
    return Measurement(best.job, result, sum(m.wall_s for m in runs), max(rss) if rss else None, best.cuda_peak_mb)


def run_map_section(options: BenchOptions) -> dict[str, Any]:
    """faster-coco-eval vs pycocotools on the same synthetic detections: identical values, time."""
    images = min(options.map_images, 100) if options.quick else options.map_images
    rounds = 1 if options.quick else MAP_PROCESSES
    measured: dict[str, list[Measurement]] = {"faster_coco_eval": [], "pycocotools": []}
    for round_ in range(rounds):  # alternating, so that a slow spell of the machine hits both
        for backend, done in measured.items():
            options.log(f"map: {backend} on {images} images ({round_ + 1}/{rounds})")
            done.append(run_job("map", {"backend": backend, "images": images}, threads=options.threads, isolate=options.isolate))
    runs = {backend: best_of_processes(done) for backend, done in measured.items()}
    fast, slow = runs["faster_coco_eval"].result, runs["pycocotools"].result
    identical = fast["values"] == slow["values"]
    ratio = slow["seconds"] / fast["seconds"] if fast["seconds"] > 0 else None  # best of the repeats
    median_ratio = slow["median_seconds"] / fast["median_seconds"] if fast["median_seconds"] else None
    return {
        "name": "map",
        "images": images,
        "vwbench": runs["faster_coco_eval"].to_json(),
        "reference": runs["pycocotools"].to_json(),
        "check": {"what": "mAP and mAP@50 identical", "faster_coco_eval": fast["values"], "pycocotools": slow["values"], "ok": identical},
        "ratio": ratio,
        "median_ratio": median_ratio,
        "target": TARGETS["map"],
        "meets_target": ratio is not None and ratio >= TARGETS["map"],
    }


def suite_datasets(options: BenchOptions) -> list[str]:
    """The datasets the suite section sweeps (checked against the suite)."""
    from vwbench.registry import TaskRegistry

    tasks = TaskRegistry.from_dir(Path(options.tasks_dir) if options.tasks_dir else None).suite(options.suite)
    known = sorted({t.dataset.name for t in tasks})
    if options.suite_datasets is None:
        return known
    unknown = [d for d in options.suite_datasets if d not in known]
    if unknown:
        raise UserError(f"dataset(s) {unknown} are not in suite {options.suite!r} (it has: {', '.join(known)})")
    return list(options.suite_datasets)


def run_suite_section(options: BenchOptions) -> dict[str, Any]:
    """``vwbench sweep`` twice in one output folder: cold (empty) then warm (everything stored).

    Every cache a sweep uses (word sets, results, the feature cache under ``OUT/features``) lives in
    its output folder, so the cold run starts from nothing."""
    datasets = suite_datasets(options)
    out = tempfile.mkdtemp(prefix="vwbench-bench-suite-")
    argv = [sys.executable, "-m", "vwbench.cli", "sweep", "--suite", options.suite, "--out", out, "--device", options.device]
    for dataset in datasets:
        argv += ["--dataset", dataset]
    if options.tasks_dir:
        argv += ["--tasks-dir", options.tasks_dir]
    if options.threads:
        argv += ["--threads", str(options.threads)]
    if options.quick:
        argv += ["--steps", "2", "--trials", "1"]
    runs = {}
    try:
        for phase in ("cold", "warm"):
            options.log(f"suite: {options.suite} on {', '.join(datasets)} ({phase})")
            run = run_process(argv, env=child_env(options.threads))
            if run.returncode != 0:
                last = (run.stderr_tail.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
                raise BenchError(f"vwbench sweep ({phase}) failed: {last}")
            runs[phase] = {"wall_s": run.wall_s, "peak_rss_mb": run.peak_rss_mb}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cold, warm = runs["cold"]["wall_s"], runs["warm"]["wall_s"]
    return {
        "name": "suite",
        "suite": options.suite,
        "datasets": datasets,
        "quick": options.quick,
        "cold": runs["cold"],
        "warm": runs["warm"],
        "ratio": cold / warm if warm > 0 else None,
        "command": " ".join(["vwbench", *argv[3:]]).replace(out, "<tmp>"),
    }


def memory_table(sections: dict[str, dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """Peak memory of every measured process, flagged where a CPU process passes 4 GiB."""
    rows = []
    for name, section in sections.items():
        pairs = [(p, section[p]) for p in ("vwbench", "reference", "cold", "warm") if p in section]
        for part, run in pairs:
            rss = run.get("peak_rss_mb")
            rows.append({
                "process": f"{name} / {part}",
                "peak_rss_mb": rss,
                "cuda_peak_mb": run.get("cuda_peak_mb"),
                "over_cpu_target": device == "cpu" and rss is not None and rss > CPU_MEMORY_TARGET_MB,
            })
    return rows


def run_sections(options: BenchOptions) -> dict[str, dict[str, Any]]:
    """Run the chosen sections in order; returns ``{section: result}``."""
    if "suite" in options.sections:
        suite_datasets(options)  # bad --suite/--dataset fail before anything is measured
    results: dict[str, dict[str, Any]] = {}
    for name in options.sections:
        if name in TRAINING_SECTIONS:
            results[name] = run_training_section(name, options)
        elif name == "map":
            results[name] = run_map_section(options)
        else:
            results[name] = run_suite_section(options)
    return results


def with_quick_defaults(options: BenchOptions) -> BenchOptions:
    """``--quick``: few words, steps and images everywhere (what the tests run)."""
    if not options.quick:
        return options
    return replace(options, naive_words=min(options.naive_words, 2), naive_steps=min(options.naive_steps, 2),
                   trials=options.trials if options.trials is not None else 1)


__all__ = ["BenchError", "BenchOptions", "SECTIONS", "TARGETS", "memory_table", "parse_sections", "run_sections", "spread", "with_quick_defaults"]
