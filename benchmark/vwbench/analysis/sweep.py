"""The delta sweep of the fracturing experiment (Figure 6): table and plot of metric vs delta."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vwbench.analysis.plotting import pyplot, save_png


@dataclass(frozen=True)
class SweepRow:
    task: str
    dataset: str
    delta: float
    metric: str
    value: float
    ci_low: float
    ci_high: float
    result: str  # the result file


def rows_to_json(rows: Sequence[SweepRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def markdown_table(rows: Sequence[SweepRow]) -> str:
    """One row per task, one column per delta: ``value [low, high]``."""
    deltas = sorted({r.delta for r in rows})
    tasks = list(dict.fromkeys(r.task for r in rows))
    cell = {(r.task, r.delta): r for r in rows}
    lines = ["| task | metric | " + " | ".join(f"delta {d:g}" for d in deltas) + " |", "|---|---|" + "---:|" * len(deltas)]
    for task in tasks:
        metric = next(r.metric for r in rows if r.task == task)
        values = [
            f"{cell[(task, d)].value:.3f} [{cell[(task, d)].ci_low:.3f}, {cell[(task, d)].ci_high:.3f}]" if (task, d) in cell else "-"
            for d in deltas
        ]
        lines.append(f"| {task} | {metric} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def plot_sweep(rows: Sequence[SweepRow], path: Path, title: str) -> Path:
    return save_png(sweep_figure(rows, title), path)


def sweep_figure(rows: Sequence[SweepRow], title: str) -> Any:
    """Metric against delta (log x axis), one line per task, 95% intervals as error bars (a
    matplotlib figure; :func:`vwbench.analysis.plotting.png_bytes` renders it in memory)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for task in dict.fromkeys(r.task for r in rows):
        mine = sorted((r for r in rows if r.task == task), key=lambda r: r.delta)
        xs = [r.delta for r in mine]
        ys = [r.value for r in mine]
        err = [[r.value - r.ci_low for r in mine], [r.ci_high - r.value for r in mine]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{task} ({mine[0].metric})")
    positive = sorted({r.delta for r in rows if r.delta > 0})
    if positive and len(positive) == len({r.delta for r in rows}):
        ax.set_xscale("log")
        ax.set_xticks(positive, [f"{d:g}" for d in positive])
    ax.set_xlabel("delta (radius / anchor's nearest-word distance)")
    ax.set_ylabel("metric")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
