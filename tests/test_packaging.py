"""The wheel: every package is listed in pyproject.toml, and a non-editable install carries the
task definitions (``vwbench/tasks``) and finds them without ``--tasks-dir``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(config["packages"]) == sorted([*find_packages(str(REPO / "benchmark")), "vwbench.tasks"])
    assert config["package-dir"]["vwbench.tasks"] == "tasks"


def test_a_wheel_install_finds_its_task_definitions(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("vwbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    shipped = sorted(n.removeprefix("vwbench/tasks/") for n in names if n.startswith("vwbench/tasks/"))
    assert shipped == sorted(str(p.relative_to(REPO / "tasks")) for p in (REPO / "tasks").rglob("*.yaml"))
    assert any(n.startswith("vwbench/zoo/mini-clip/") for n in names)
    env = {k: v for k, v in os.environ.items() if k != "VWBENCH_TASKS_DIR"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    probe = "import vwbench; from vwbench.registry import TaskRegistry, default_tasks_dir; print(vwbench.__file__); print(default_tasks_dir()); print(len(TaskRegistry.from_dir()))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    module, tasks, count = proc.stdout.split()
    assert Path(module).is_relative_to(tmp_path / "site") and Path(tasks) == tmp_path / "site" / "vwbench" / "tasks"
    assert int(count) == len(_repo_tasks())


def _repo_tasks():
    from vwbench.registry import TaskRegistry

    return TaskRegistry.from_dir(REPO / "tasks")
