"""Fixtures for the registry tests: the repo's task registry and editable copies of its files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vwbench.registry import TaskRegistry

REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks"


@pytest.fixture(scope="session")
def registry() -> TaskRegistry:
    return TaskRegistry.from_dir(REPO_TASKS)


@pytest.fixture
def tasks_copy(tmp_path: Path) -> Path:
    """A writable copy of the repo's tasks/ folder."""
    dest = tmp_path / "tasks"
    shutil.copytree(REPO_TASKS, dest)
    return dest


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur exactly once) in a file."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the first line containing ``needle``."""
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")

