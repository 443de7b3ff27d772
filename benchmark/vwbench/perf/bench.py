"""One ``vwbench bench`` run: the sections, the machine, the memory table, the projection."""

from __future__ import annotations

import os
from typing import Any

import vwbench
from vwbench.perf.report import SCHEMA, library_versions, machine_info
from vwbench.perf.sections import TRAINING_SECTIONS, BenchOptions, memory_table, run_sections


def run_bench(options: BenchOptions, command: str = "vwbench bench") -> dict[str, Any]:
    """Measure every section of ``options`` and return the full result (what ``perf.json`` holds)."""
    from vwbench.results.provenance import git_commit, utc_now

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "created": utc_now(),
        "command": command,
        "vwbench_version": vwbench.__version__,
        "git_commit": git_commit(),
        "machine": machine_info(options.device),
        "versions": library_versions(),
        "options": options.to_json(),
    }
    sections = run_sections(options)
    results["sections"] = sections
    results["memory"] = memory_table(sections, options.device)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    if all(name in sections for name in TRAINING_SECTIONS):
        from vwbench.perf.project import project

        results["projection"] = project(results)
    return results


def failed_checks(results: dict[str, Any]) -> list[str]:
    """Sections whose two sides did not compute the same numbers."""
    return [name for name, section in results["sections"].items() if section.get("check") and not section["check"]["ok"]]


def summary_lines(results: dict[str, Any]) -> list[str]:
    """One line per section (ratio, check, peak memory) for the terminal."""
    lines = []
    for name, section in results["sections"].items():
        ratio = section.get("ratio")
        text = f"{name}: " + (f"{ratio:.1f}x" if ratio is not None else "no ratio")
        median = section.get("median_step_ratio", section.get("median_ratio"))
        if median:
            text += f" (median-based {median:.1f}x)"
        if section.get("target") is not None:
            text += f" (target >= {section['target']:g}x: {'met' if section['meets_target'] else 'NOT met'})"
        check = section.get("check")
        if check and "max_abs_diff" in check:
            text += f"; max loss diff {check['max_abs_diff']:.2e} ({'ok' if check['ok'] else 'FAILED'})"
        elif check:
            text += f"; faster-coco-eval {check['faster_coco_eval']} vs pycocotools {check['pycocotools']} ({'identical' if check['ok'] else 'DIFFERENT'})"
        if name == "suite":
            text += f"; cold {section['cold']['wall_s']:.1f} s, warm {section['warm']['wall_s']:.1f} s"
        lines.append(text)
    for row in results["memory"]:
        if row["peak_rss_mb"] is not None:
            flag = "  OVER 4 GiB" if row["over_cpu_target"] else ""
            cuda = f", CUDA {row['cuda_peak_mb']:.0f} MiB" if row.get("cuda_peak_mb") else ""
            lines.append(f"peak memory {row['process']}: {row['peak_rss_mb']:.0f} MiB{cuda}{flag}")
    return lines
