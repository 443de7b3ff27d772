"""submissions/README.md's snippets for a linear map and an embeddings file run as written, and
what they write passes ``vwbench validate FILE --tier mini`` (so the docs cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app

README = Path(__file__).resolve().parents[2] / "submissions" / "README.md"
SECTIONS = {"linear-map": "## 1. Linear map", "embeddings": "## 2. Embeddings"}


def python_blocks(markdown: str, heading: str) -> list[str]:
    """The ```python blocks of the section that starts with ``heading`` (up to the next ``## `` or
    ``### `` heading)."""
    start = markdown.index(heading)
    following = re.search(r"^###? ", markdown[start + len(heading):], flags=re.M)
    section = markdown[start:] if following is None else markdown[start:start + len(heading) + following.start()]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)


@pytest.mark.parametrize("kind", list(SECTIONS))
def test_readme_snippet_writes_a_valid_submission(tmp_path: Path, kind: str) -> None:
    (snippet,) = python_blocks(README.read_text(encoding="utf-8"), SECTIONS[kind])
    (tmp_path / "snippet.py").write_text(snippet, encoding="utf-8")
    # a fresh interpreter in an empty folder, as a reader would run it
    proc = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    (written,) = tmp_path.glob("*.safetensors")
    res = CliRunner().invoke(app, ["validate", str(written), "--tier", "mini"])
    assert res.exit_code == 0, res.output
    assert f"valid {kind} submission" in res.output and "mini: fits its checkpoints" in res.output
