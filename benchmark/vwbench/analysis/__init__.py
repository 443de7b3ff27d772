"""Analyses of trained words: the delta sweep's table and plot, nearest vocabulary words, and the
text encoder's layers (truncated generation, t-SNE of pooled activations)."""

from __future__ import annotations

from pathlib import Path

ANALYSES = ("neighbors", "truncation", "tsne")  # the `vwbench analyze` subcommands


def default_stem(name: str, result: Path) -> Path:
    """Where ``vwbench analyze NAME`` writes without ``--out``: beside ``result``."""
    return result.parent / f"analysis-{name}-{result.stem}"


def is_default_analysis_file(path: Path) -> bool:
    """Whether ``path`` is named as :func:`default_stem` names an analysis (the leaderboard, which
    reads the results folder those files sit in, ignores them when they are not results)."""
    return any(path.name.startswith(f"analysis-{name}-") for name in ANALYSES)


def stem_file(stem: Path, suffix: str) -> Path:
    """``STEM`` + ``suffix`` (``.json``, ``.png``): a dot inside the stem stays (``run-0.5`` gives
    ``run-0.5.json``, where ``with_suffix`` would give ``run-0.json``); a stem given with one of
    those suffixes already is taken without it."""
    base = stem.with_suffix("") if stem.suffix in (".json", ".png") else stem
    return base.with_name(base.name + suffix)
