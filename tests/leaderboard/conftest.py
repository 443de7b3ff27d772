"""Result files from real (tiny-model) runs, shared by the leaderboard and check tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app

CROSS = ["clip->owlv2", "owlv2->clip"]
BASELINES = ["lstsq", "ridge", "procrustes", "knn", "anchor", "random"]


def vw_run(tasks: Path, out: Path, task: str, *extra: str) -> None:
    args = ["run", "--task", task, "--dataset", "synth-tiny", "--tasks-dir", str(tasks), "--out", str(out), "--device", "cpu", "--threads", "1", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def tiny_results(tiny_tasks, tmp_path_factory) -> Path:
    """``runs/`` of the in-domain runs and every baseline on both cross pairs (words trained once per source)."""
    out = tmp_path_factory.mktemp("lb") / "runs"
    for task in ("clip->clip", "owlv2->owlv2"):
        vw_run(tiny_tasks, out, task)
    for task in CROSS:
        for method in BASELINES:
            vw_run(tiny_tasks, out, task, "--transfer", method)
    return out
