"""Leaderboards from result files (``vwbench leaderboard``) and regression checks against a
stored leaderboard (``vwbench check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vwbench.leaderboard.build import SCHEMA, SCHEMA_VERSION, build
from vwbench.leaderboard.collect import collect


def write_leaderboard(results_dir: Path, out_dir: Path, name: str | None = None, check: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect ``results_dir``, write ``README.md``, ``leaderboard.json`` and ``index.html`` into
    ``out_dir`` (each atomically) and return the leaderboard payload."""
    import json

    from vwbench.leaderboard.html_page import render_html
    from vwbench.leaderboard.markdown import render_markdown
    from vwbench.results.atomic import atomic_write_bytes

    out_dir = Path(out_dir)
    board = build(collect(results_dir), name or out_dir.name, check)
    readme, page = render_markdown(board), render_html(board)
    atomic_write_bytes(out_dir / "leaderboard.json", (json.dumps(board, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out_dir / "README.md", readme.encode())
    atomic_write_bytes(out_dir / "index.html", page.encode())
    return board


__all__ = ["SCHEMA", "SCHEMA_VERSION", "build", "collect", "write_leaderboard"]
