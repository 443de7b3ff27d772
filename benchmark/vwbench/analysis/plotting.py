"""Matplotlib without a display, and PNGs written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from vwbench.results.atomic import atomic_write_bytes


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
