"""``vwbench bench --project paper``: the paper's study priced at the costs measured by the bench.

The study (Trabucco et al. 2024): 3 models x 4 datasets x 10 concepts x 10 trials = 1,200 words of 1,000
Adam steps (batch 8) in Section 4, each evaluated on the 3 target models; Section 5 trains them
again at 4 deltas (4,800 words). Generation evaluation makes 8 images of 50 denoising steps per word
(vwbench's default: the paper does not say how many images). The paper reports 12 hours (Section 4)
and about 2.5 days (Section 5) on 40 RTX 2080 Ti GPUs.

Costs are per word-step of vwbench's batched training (the median step, see
:func:`seconds_per_word_step`; ``prepare`` is added per word set), per word of detection /
classification evaluation, and per image-step of generation; they are only as good as the device
and models they were measured on, which the projection states.
"""

from __future__ import annotations

from typing import Any

from vwbench.errors import UserError

FAMILY_OF_SECTION = {"generation": "sd", "detection": "owlv2", "classification": "clip"}
STUDY = {
    "models": 3,
    "datasets": 4,
    "concepts_per_dataset": 10,
    "trials": 10,
    "steps": 1000,
    "images_per_concept": 8,
    "targets_per_word": 3,
    "generations_per_word": 8,
    "inference_steps": 50,
    "deltas": 4,
}
PAPER_GPUS = 40
PAPER = {
    "section4": {"words": 1200, "wall_hours": 12.0, "gpu_hours": 12.0 * PAPER_GPUS, "said": "12 hours on 40 RTX 2080 Ti"},
    "section5": {"words": 4800, "wall_hours": 60.0, "gpu_hours": 60.0 * PAPER_GPUS, "said": "about 2.5 days on 40 RTX 2080 Ti"},
}


def costs_from_results(results: dict[str, Any]) -> dict[str, Any]:
    """Per-family training and evaluation costs from a bench result (this run's or a stored one)."""
    sections = results.get("sections", {})
    missing = [s for s in FAMILY_OF_SECTION if s not in sections]
    if missing:
        raise UserError(
            f"the projection needs the training costs of all three families; these results lack {', '.join(missing)}: "
            "run `vwbench bench --sections detection,classification,generation` or pass --costs with a full perf.json"
        )
    costs: dict[str, Any] = {}
    for name, family in FAMILY_OF_SECTION.items():
        try:
            v = sections[name]["vwbench"]
            images = int(v["facts"]["concepts"]) * int(v["facts"]["images_per_concept"])
            costs[family] = {
                "seconds_per_word_step": seconds_per_word_step(v),
                "prepare_seconds_per_image": float(v["seconds_prepare"]) / images if images else 0.0,
                "eval": v.get("eval"),
                "facts": v["facts"],
            }
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise UserError(f"the {name} section of these bench results is incomplete ({type(exc).__name__}: {exc}); "
                            "measure again with `vwbench bench`, or pass --costs with a full perf.json") from None
        if not costs[family]["seconds_per_word_step"] > 0:
            raise UserError(f"the {name} section of these bench results has no positive cost per word-step; measure again with `vwbench bench`")
    return costs


MEDIAN_MIN_STEPS = 5  # fewer measured steps and the median is still the warm-up's


def seconds_per_word_step(batched: dict[str, Any]) -> float:
    """Steady-state seconds per word-step of vwbench's batched run: the median step time over the
    words, where the run took enough steps for a median; else the whole run's rate (steps only).

    The study's runs take 1,000 steps, so the first steps' one-time costs (kernel selection,
    compilation) do not belong in the price of a step. On a GPU they dominate a short bench run:
    the first of 10 SD 2.1 steps took seconds, the others about 0.3 s each."""
    median = batched.get("median_step_seconds")
    if median and batched.get("steps", 0) >= MEDIAN_MIN_STEPS and batched.get("words"):
        return float(median) / int(batched["words"])
    return 1.0 / batched["steady_word_steps_per_s"]


def device_label(results: dict[str, Any]) -> tuple[str, bool]:
    """What the costs were measured on, in words, and whether that was a GPU."""
    machine, options = results.get("machine", {}), results.get("options", {})
    threads = options.get("threads")
    from vwbench.perf.sections import SECTIONS

    # the bench's section order, not the stored file's (a .json has its keys sorted)
    sections = results.get("sections", {})
    checkpoints = [sections[name]["vwbench"]["facts"]["checkpoint"] for name in SECTIONS if name in FAMILY_OF_SECTION and name in sections]
    models = "models " + ", ".join(checkpoints)
    if machine.get("device") == "cuda":
        return f"GPU {machine.get('gpu', 'unknown')}, {options.get('dtype')}, {models}", True
    cpu = f"CPU {machine.get('cpu_model', 'unknown')}, {threads or 'default'} torch thread(s) per process"
    return f"{cpu}, {models}, fp32", False


def project(results: dict[str, Any]) -> dict[str, Any]:
    """The study's cost on this implementation at the measured costs, next to the paper's."""
    costs = costs_from_results(results)
    label, on_gpu = device_label(results)
    words_per_model = STUDY["datasets"] * STUDY["concepts_per_dataset"] * STUDY["trials"]
    word_sets = STUDY["models"] * STUDY["datasets"]
    images_per_set = STUDY["concepts_per_dataset"] * STUDY["images_per_concept"]
    sections = {}
    for key, deltas in (("section4", 1), ("section5", STUDY["deltas"])):
        words = words_per_model * deltas
        all_words = words * STUDY["models"]
        rows = []
        for family, cost in costs.items():
            rows.append({
                "stage": f"train {family} words",
                "count": f"{words:,} words x {STUDY['steps']:,} steps",
                "unit_seconds": cost["seconds_per_word_step"],
                "unit": "word-step",
                "hours": words * STUDY["steps"] * cost["seconds_per_word_step"] / 3600,
            })
        prepare = sum(c["prepare_seconds_per_image"] for c in costs.values()) * images_per_set * STUDY["datasets"]
        rows.append({"stage": "prepare (frozen image side, once per word set)", "count": f"{word_sets} word sets",
                     "unit_seconds": None, "unit": "", "hours": prepare / 3600})
        for family, cost in costs.items():
            ev = cost.get("eval")
            if not ev:
                continue
            if ev["kind"] == "generation":
                per_word = ev["seconds_per_image_step"] * STUDY["generations_per_word"] * STUDY["inference_steps"]
                count = f"{all_words:,} words x {STUDY['generations_per_word']} images x {STUDY['inference_steps']} steps"
                unit, unit_seconds = "image-step", ev["seconds_per_image_step"]
            else:
                per_word, count, unit, unit_seconds = ev["seconds_per_word"], f"{all_words:,} words", "word", ev["seconds_per_word"]
            rows.append({"stage": f"evaluate on {family}", "count": count, "unit_seconds": unit_seconds, "unit": unit,
                         "hours": all_words * per_word / 3600})
        total = sum(r["hours"] for r in rows)
        sections[key] = {"words": all_words, "rows": rows, "hours": total, "paper": PAPER[key]}
    return {"measured_on": label, "gpu": on_gpu, "study": STUDY, "sections": sections,
            "missing": ["the generation judge's labelling of generated images", "transfer fitting (seconds)", "the layer analysis"]}


def render_projection(projection: dict[str, Any]) -> str:
    """The projection as plain text (what ``--project paper`` prints)."""
    on_gpu = projection["gpu"]
    unit = "GPU-hours" if on_gpu else "device-hours (CPU, NOT GPU-hours)"
    lines = [f"Costs measured on: {projection['measured_on']}."]
    if not on_gpu:
        lines.append(
            "These costs come from a CPU and the models named above, not from the paper's models on a GPU: the "
            "hours below are what the study's shape would take on this CPU at those models' sizes. They are not "
            "GPU-hours and say nothing about a GPU. Run `vwbench bench --device cuda --dtype fp16 --tier paper` on "
            "a GPU machine and project from its perf.json (--costs) for GPU-hours of the paper-tier models."
        )
    for key, title in (("section4", "Section 4: 1,200 words"), ("section5", "Section 5: 4,800 words (4 deltas)")):
        section = projection["sections"][key]
        paper = section["paper"]
        lines += ["", f"{title}, each evaluated on 3 targets", ""]
        width = max(len(r["stage"]) for r in section["rows"])
        for row in section["rows"]:
            each = f"{row['unit_seconds']:.4g} s/{row['unit']}" if row["unit_seconds"] is not None else ""
            lines.append(f"  {row['stage']:<{width}}  {row['count']:<40} {each:>22}  {row['hours']:>10.2f} h")
        lines.append(f"  {'total on this implementation':<{width}}  {'':<40} {'':>22}  {section['hours']:>10.2f} {unit}")
        lines.append(f"  paper: {paper['said']} = {paper['gpu_hours']:,.0f} GPU-hours")
    lines += ["", "Not included: " + ", ".join(projection["missing"]) + "."]
    return "\n".join(lines)
