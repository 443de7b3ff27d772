"""``leaderboards/perf.md`` (and ``perf.json`` beside it): the machine, the versions and the numbers.

Both files are written atomically. The JSON holds everything measured; ``vwbench bench --project
paper`` reads its training and evaluation costs back (:mod:`vwbench.perf.project`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vwbench.errors import UserError
from vwbench.jsonio import read_json
from vwbench.results.provenance import cpu_model

SCHEMA = "vwbench.perf/1"
_PACKAGES = ("torch", "diffusers", "transformers", "open_clip_torch", "faster-coco-eval", "pycocotools", "torchmetrics", "numpy")


def library_versions() -> dict[str, str]:
    """Versions of Python and the packages whose speed the bench measures."""
    from vwbench.results.provenance import library_versions as versions_of

    return versions_of(_PACKAGES, missing="not installed")


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """The machine the numbers come from: OS, CPU model, cores, memory, load, and the GPU if used."""
    info: dict[str, Any] = {
        "host_os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": _memory_gb(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "device": device,
    }
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
    return info


# ------------------------------------------------------------------ markdown


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if digits == 0 and isinstance(value, (int, float)):
        return f"{value:,.0f}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _flop(value: float | None) -> str:
    if not value:
        return "—"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}FLOP"
    return f"{value:.3g} FLOP"


def _ratio(section: dict) -> str:
    ratio = section.get("ratio")
    if ratio is None:
        return "—"
    target = section.get("target")
    if target is None:
        return f"{ratio:.1f}x"
    return f"{ratio:.1f}x ({'meets' if section.get('meets_target') else 'below'} the {target:g}x target)"


_TRAINING_TEXT = {
    "detection": (
        "vwbench: all words in one batch on region features computed once (`prepare`: OWLv2's vision tower "
        "once per training image), so a step runs only the text tower. Reference: transformers' "
        "`Owlv2ForObjectDetection(input_ids, pixel_values)` every step on the word's 8 images, one word at a "
        "time; the word is spliced into the token embeddings by a forward hook; the target region is picked "
        "from that step's predicted boxes. transformers' input convention is one text query per image, so the "
        "reference runs the text tower once per image (8x per step)."
    ),
    "classification": (
        "vwbench: all words in one batch on image features computed once. Reference: open_clip's "
        "`model(images, text)` every step on the word's 8 positive and 8 negative images (loaded and "
        "preprocessed every step), one word at a time, the word spliced in by a forward hook."
    ),
    "generation": (
        "vwbench: all words in one Adam step on VAE latents computed once (the posterior mean), through the "
        "UNet together or a few words per pass (said below where so). Reference: "
        "the recipe of diffusers' `examples/textual_inversion/textual_inversion.py`, one word at a time: "
        "placeholder tokens added to the tokenizer and the token-embedding matrix resized, every step the "
        "batch VAE-encoded and the full text encoder run on the tokenized prompt, AdamW over the whole "
        "embedding matrix, every row but the placeholders' restored after the step. Differences from the "
        "script, each needed for the two loss curves to be the same computation: the latent is the VAE "
        "posterior's mean (the script samples it); the prompt is vwbench's \"a photo of <word>\" (the script "
        "draws one of its imagenet templates per image); the images are vwbench's resize and centre crop "
        "without the script's random flip; the batch, timesteps and noise come from the word's own generator "
        "in vwbench's order (the script uses a shuffled DataLoader and the global RNG); AdamW runs with "
        "weight decay 0 (the script's default is 1e-2) and with vwbench's batch size (8; the script's default "
        "is 16) and learning rate, so that it is vwbench's Adam; no accelerate (so no mixed precision on a CPU), "
        "no lr scheduler (the script's default is constant), no checkpointing or validation, no gradient "
        "accumulation, no data-loader workers."
    ),
}


def _training_md(section: dict) -> list[str]:
    v, r, c, facts = section["vwbench"], section["reference"], section["check"], section["facts"]
    lines = [
        f"## {section['name'].capitalize()} training ({facts['checkpoint']})",
        "",
        section.get("method") or _TRAINING_TEXT[section["name"]],
        "",
        f"Workload: {facts['words']} words ({facts['concepts']} concepts x {facts['trials']} trial(s)) of "
        f"{facts['dataset']}, {facts['n_vectors']} vectors per word, batch {facts['batch_size']} per word, "
        f"{facts['device']} {facts['dtype']}." + _passes(v),
        "",
        "| | words x steps | seconds | word-steps/s | FLOPs per word-step | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| vwbench (batched, `train_words`) | {v['words']} x {v['steps']} | {_num(v['seconds_total'])} "
        f"(prepare {_num(v['seconds_prepare'])}) | {_num(v['word_steps_per_s'])} (steps only: "
        f"{_num(v['steady_word_steps_per_s'])}) | {_flop(_per_word(v))} | {_num(v.get('peak_rss_mb'), 0)} |",
        f"| reference (one word at a time) | {len(r['words'])} x {r['steps']} | {_num(r['seconds'])} | "
        f"{_num(r['word_steps_per_s'])} | {_flop(r.get('flops_per_word_step'))} | {_num(r.get('peak_rss_mb'), 0)} |",
        "",
        f"**Ratio: {_ratio(section)}** in word-steps per second (vwbench's rate includes `prepare`). "
        f"From the median step times instead (steps only, robust to other work on the machine): "
        f"{_num(section.get('median_step_ratio'), 1)}x.",
        "",
        f"Same losses: the per-word losses of the first {c['steps_compared']} steps of words {c['words_compared']} "
        f"differ by at most {_num(c['max_abs_diff'])} (tolerance {c['tolerance']:g}): "
        f"{'**ok**' if c['ok'] else '**FAILED**'}.",
    ]
    if v.get("achieved_flops_per_s"):
        lines += ["", f"vwbench's training steps ran at {v['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s as "
                  f"`torch.utils.flop_counter` counts them (matmuls, convolutions, attention)" + _share(v, "peak_flops_share")
                  + _median_rate(v) + "."]
    if facts.get("compiled"):
        lines += ["", f"vwbench's side ran with `torch.compile` on {', '.join(facts['compiled'])} (the reference did not); "
                  "the first steps, and so the whole-run rate, include the compilation."]
    return lines + [""]


def _passes(v: dict) -> str:
    """How vwbench's steps went through the model, where not in one pass (older reports: one)."""
    per_pass = v.get("words_per_pass")
    if not per_pass or per_pass >= v["words"]:
        return ""
    return f" vwbench's steps went through the model {per_pass} word(s) at a time ({-(-v['words'] // per_pass)} passes per step)."


def _per_word(v: dict) -> float | None:
    flops = v.get("flops_per_step")
    return flops / v["words"] if flops and v.get("words") else None


def _share(v: dict, key: str) -> str:
    share = v.get(key)
    return f", {share:.1%} of the GPU's peak" if share is not None else ""


def _median_rate(v: dict) -> str:
    """The rate at the median step: the steady state, without the first steps' warm-up (kernel
    selection, compilation), which dominates a short run on a GPU."""
    rate = v.get("median_step_flops_per_s")
    if not rate:
        return ""
    return f"; at the median step {rate / 1e9:.1f} GFLOP/s" + _share(v, "median_step_peak_flops_share")


def _map_md(section: dict) -> list[str]:
    v, r, c = section["vwbench"], section["reference"], section["check"]
    return [
        "## Detection mAP: faster-coco-eval vs pycocotools",
        "",
        f"`vwbench.metrics.detection.detection_map` (COCO dicts built from whole arrays, then the backend's `COCOeval`) with each backend on the same "
        f"{section['images']} procedurally drawn images ({v['ground_truth']} ground-truth boxes, {v['detections']} "
        "detections: noisy hits and random false positives with random scores, fixed seed), each backend in "
        + (f"{v['processes']} fresh processes, the two backends alternating," if v.get("processes", 1) > 1 else "its own process,")
        + " each process after a small warm-up call.",
        "",
        "| backend | seconds (best) | map | map50 | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| faster-coco-eval | {_num(v['seconds'])} | {v['values']['map']!r} | {v['values']['map50']!r} | {_num(v.get('peak_rss_mb'), 0)} |",
        f"| pycocotools | {_num(r['seconds'])} | {r['values']['map']!r} | {r['values']['map50']!r} | {_num(r.get('peak_rss_mb'), 0)} |",
        "",
        f"**Ratio: {_ratio(section)}** (the best of {v['repeats']} calls each; from the median calls: "
        f"{_num(section.get('median_ratio'), 1)}x). Identical values: {'**yes**' if c['ok'] else '**NO**'}.",
        "",
    ]


def _suite_md(section: dict) -> list[str]:
    cold, warm = section["cold"], section["warm"]
    scope = "reduced to " + ", ".join(section["datasets"]) if len(section["datasets"]) == 1 else ", ".join(section["datasets"])
    return [
        f"## The {section['suite']} suite, cold vs warm ({scope})",
        "",
        f"`{section['command']}` twice in one fresh output folder: cold (nothing stored) and warm (every word set, "
        "feature and result stored by the cold run)" + (" (quick: 2 steps, 1 trial)" if section.get("quick") else "") + ".",
        "",
        "| run | wall seconds | peak RSS (MiB) |",
        "|---|---:|---:|",
        f"| cold | {_num(cold['wall_s'], 1)} | {_num(cold['peak_rss_mb'], 0)} |",
        f"| warm | {_num(warm['wall_s'], 1)} | {_num(warm['peak_rss_mb'], 0)} |",
        "",
        f"**Cold / warm: {_ratio(section)}.**",
        "",
    ]


def _memory_md(rows: list[dict], device: str) -> list[str]:
    lines = [
        "## Peak memory",
        "",
        "Peak resident set size of each measuring process (`ru_maxrss` of that child, from `os.wait4`)"
        + (", and the peak CUDA memory `torch.cuda` allocated" if device == "cuda" else "")
        + ". Target on a CPU: under 4 GiB (4,096 MiB) for the mini suite.",
        "",
        "| process | peak RSS (MiB) | CUDA peak (MiB) | over 4 GiB (CPU) |",
        "|---|---:|---:|---|",
    ]
    for row in rows:
        flag = "**yes**" if row["over_cpu_target"] else ("no" if device == "cpu" else "—")
        lines.append(f"| {row['process']} | {_num(row['peak_rss_mb'], 0)} | {_num(row['cuda_peak_mb'], 0)} | {flag} |")
    return lines + [""]


def _ordered(mapping: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``mapping`` with the keys of ``order`` first, in that order, then any others: a stored .json
    has its keys sorted, and a report rendered again from it must read as the measuring run's."""
    known = {name: mapping[name] for name in order if name in mapping}
    return {**known, **{k: v for k, v in mapping.items() if k not in known}}


def _in_order(sections: dict[str, Any]) -> dict[str, Any]:
    """``sections`` in the bench's order."""
    from vwbench.perf.sections import SECTIONS

    return _ordered(sections, SECTIONS)


def _companions_md(companions: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """A summary of other bench reports kept beside this one (e.g. ``perf-gpu.json`` measured on a
    GPU): one row per training section, at the median step (the steady state)."""
    if not companions:
        return []
    lines = [
        "## Other reports beside this one",
        "",
        "Measured elsewhere (another machine or other options) and kept beside this report; each file has the full "
        "details. Rates at the median step: the steady state of a long run, without the first steps' warm-up.",
        "",
        "| report | device | section | workload | word-steps/s (median step) | FLOP share of peak (median step) | "
        "ratio (median-based) | loss check | CUDA peak (MiB) |",
        "|---|---|---|---|---:|---:|---|---|---:|",
    ]
    for name, other in companions:
        machine, opts = other.get("machine", {}), other.get("options", {})
        device = f"{machine.get('gpu') or machine.get('cpu_model', '?')}, {opts.get('dtype')}"
        if opts.get("compile"):
            device += ", compiled"
        for section_name, section in _in_order(other.get("sections", {})).items():
            v = section.get("vwbench")
            if not v or "median_step_seconds" not in v:
                continue
            facts = v["facts"]
            rate = v["words"] / v["median_step_seconds"] if v.get("median_step_seconds") else None
            share = v.get("median_step_peak_flops_share")
            check = section.get("check") or {}
            lines.append(
                f"| [{name}]({name}) | {device} | {section_name} | {facts['checkpoint']}: {v['words']} words x {v['steps']} steps, "
                f"batch {facts['batch_size']} | {_num(rate)} | {f'{share:.1%}' if share is not None else '—'} | "
                f"{_ratio(section)} ({_num(section.get('median_step_ratio'), 1)}x) | "
                f"{'ok' if check.get('ok') else '**FAILED**'} ({_num(check.get('max_abs_diff'))}) | {_num(v.get('cuda_peak_mb'), 0)} |"
            )
    return lines + [""]


def companion_reports(markdown_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The other bench results stored beside ``markdown_path``: ``<stem>-*.json`` (e.g.
    ``perf-gpu.json`` beside ``perf.md``), whose markdown is linked; unreadable files are skipped."""
    markdown_path = Path(markdown_path)
    found = []
    for path in sorted(markdown_path.parent.glob(f"{markdown_path.stem}-*.json")):
        try:
            entry = (path.with_suffix(".md").name, read_results(path))
            _companions_md([entry])  # a partial or foreign report is skipped, never fatal to this one
        except (UserError, *_INCOMPLETE):
            continue
        found.append(entry)
    return found


def render_markdown(results: dict[str, Any], companions: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    """The perf report as markdown (``companions``: other reports beside it, summarized at the end)."""
    machine, versions, sections = results["machine"], results["versions"], _in_order(results["sections"])
    opts = results["options"]
    lines = [
        "# vwbench performance",
        "",
        f"Measured {results['created']} by `{results['command']}` (vwbench {results['vwbench_version']}, "
        f"commit {results.get('git_commit') or 'unknown'}).",
        "",
        "## Machine and versions",
        "",
        f"- machine: {machine['host_os']}; CPU: {machine['cpu_model']}, {machine['cpu_cores']} cores "
        f"({machine['cpu_cores_usable']} usable), {machine['memory_gb']} GiB memory"
        + (f"; GPU: {machine['gpu']} ({machine['gpu_memory_gb']} GiB)" if machine.get("gpu") else "; no GPU used"),
        f"- torch threads per process: {opts.get('threads') or 'torch default'}; device {opts['device']}, {opts['dtype']}",
        f"- load average at start / end: {machine.get('load_average')} / {results.get('load_average_end')} "
        "(other work on the machine slows every measurement; the two sides of a ratio run one after the other)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in _ordered(versions, ("python", *_PACKAGES)).items()),
        "",
        "Every measured thing ran in a fresh process. Ratios are speeds: word-steps per second for training "
        "(a word-step is one optimizer step of one word on its batch of 8 images), seconds for mAP and the suite. "
        "Losses are checked to agree before speeds are compared.",
        "",
        "## Summary",
        "",
        "| section | ratio | check |",
        "|---|---|---|",
    ]
    for name, section in sections.items():
        check = section.get("check")
        verdict = "—" if check is None else ("ok" if check["ok"] else "**FAILED**")
        if check is not None and "max_abs_diff" in check:
            verdict += f" (max loss diff {_num(check['max_abs_diff'])})"
        median = section.get("median_step_ratio", section.get("median_ratio"))
        extra = f"; median-based {median:.1f}x" if median else ""
        lines.append(f"| {name} | {_ratio(section)}{extra} | {verdict} |")
    lines.append("")
    for name, section in sections.items():
        if name == "map":
            lines += _map_md(section)
        elif name == "suite":
            lines += _suite_md(section)
        else:
            lines += _training_md(section)
    lines += _memory_md(results["memory"], opts["device"])
    if results.get("projection"):
        from vwbench.perf.project import render_projection

        lines += ["## Projection: the paper's study on this implementation", "", "```", render_projection(results["projection"]), "```", ""]
    lines += _companions_md(companions or [])
    return "\n".join(lines)


def write_report(results: dict[str, Any], markdown_path: Path, *, measured: bool = True) -> tuple[Path, Path]:
    """Write ``perf.md`` and ``perf.json`` (same folder and stem) atomically; returns both paths.
    ``measured``: ``results`` were just measured, so each training section's method text (what
    vwbench and the reference did) is stored with them, and a later ``--render`` shows the text
    of the code that measured, not of the code that renders."""
    from vwbench.results.atomic import atomic_write_bytes, atomic_write_json

    if measured:
        sections = results.get("sections")
        for name, section in (sections.items() if isinstance(sections, dict) else []):
            if isinstance(section, dict) and name in _TRAINING_TEXT:
                section.setdefault("method", _TRAINING_TEXT[name])
    markdown_path = Path(markdown_path)
    json_path = markdown_path.with_suffix(".json")
    companions = [c for c in companion_reports(markdown_path) if c[0] != markdown_path.name]
    with complete_result(json_path):  # rendered before either file is written: both or neither
        text = render_markdown(results, companions)
    atomic_write_json(json_path, results, phase="perf")
    atomic_write_bytes(markdown_path, text.encode(), phase="perf")
    return markdown_path, json_path


_INCOMPLETE = (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError)


@contextmanager
def complete_result(source: Path | str) -> Iterator[None]:
    """Reading a bench result that lacks a field (hand-edited, cut short, another version) is a
    one-line :class:`UserError` naming ``source``, not the KeyError or ZeroDivisionError inside."""
    try:
        yield
    except _INCOMPLETE as exc:
        raise UserError(f"{source} is not a complete bench result ({type(exc).__name__}: {exc}); measure again with `vwbench bench`") from None


def rerender_report(markdown_path: Path) -> Path:
    """Write ``markdown_path`` again from the ``.json`` beside it, measuring nothing: the derived
    parts (projection, the summary of reports beside it) are computed afresh."""
    from vwbench.perf.project import project

    json_path = Path(markdown_path).with_suffix(".json")
    if not json_path.is_file():
        raise UserError(f"--render: no stored bench results at {json_path}; measure first with `vwbench bench --out {markdown_path}`")
    results = read_results(json_path)
    if "projection" in results:
        with complete_result(json_path):
            results["projection"] = project(results)
    write_report(results, Path(markdown_path), measured=False)
    return Path(markdown_path)


def read_results(path: Path) -> dict[str, Any]:
    """A stored ``perf.json``; a missing or foreign file is a :class:`UserError`."""
    path = Path(path)
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise UserError(f"no stored bench results at {path}: run `vwbench bench` first, or pass --costs FILE") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable bench result ({exc}); run `vwbench bench` again") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a vwbench bench result (schema {SCHEMA!r} expected)")
    return data
