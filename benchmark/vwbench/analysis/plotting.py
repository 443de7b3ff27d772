"""Matplotlib without a display, and PNGs (alone, or with their JSON) written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from vwbench.analysis import stem_file
from vwbench.results.atomic import atomic_write_bytes, write_file_set


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (and closed): nothing is written yet."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return buffer.getvalue()


def save_png(fig: Any, path: Path) -> Path:
    atomic_write_bytes(path, png_bytes(fig))
    return path


def save_json_and_png(stem: Path, payload: Any, fig: Any) -> tuple[Path, Path]:
    """Write ``stem.json`` and its figure ``stem.png`` all or nothing: both are rendered in memory
    first (a payload that is not JSON or a figure that does not draw writes neither), then written
    as one set (:func:`vwbench.results.atomic.write_file_set`): a folder in the way, a full disk or
    a read-only folder writes neither and keeps both old files (if any) as they were."""
    json_path, png_path = stem_file(stem, ".json"), stem_file(stem, ".png")
    text = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    image = png_bytes(fig)
    write_file_set({json_path: text, png_path: image})
    return json_path, png_path
