"""`vwbench analyze` takes --threads like `run`, and truncation reports one progress step per layer."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from typer.testing import CliRunner

from vwbench.cli import app


class RecordingReporter:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int | None]] = []
        self.steps: list[dict] = []

    @contextmanager
    def stage(self, name: str, total: int | None = None):
        self.stages.append((name, total))
        outer = self

        class _Stage:
            def advance(self, n: int = 1, **info) -> None:
                outer.steps.append({"n": n, **info})

        yield _Stage()

    def log(self, message: str) -> None:
        pass


class FirstConceptJudge:
    def classify_images(self, images, concepts):
        return [concepts[0] for _ in images]


def test_truncation_reports_one_step_per_layer(tiny_tasks):
    from vwbench.analysis.layers import truncation_accuracy
    from vwbench.models.sd import StableDiffusionAdapter

    sd = StableDiffusionAdapter.from_pretrained(tiny_tasks.parent / "sd")
    vectors = sd.token_vectors(["circle", "square"])[:, None].expand(-1, 4, -1)
    reporter = RecordingReporter()
    rows = truncation_accuracy(sd, FirstConceptJudge(), vectors, ["circle", "square"], ["circle", "square"], [1, 2],
                               generations=1, steps=1, guidance=7.5, seed=0, reporter=reporter)
    assert reporter.stages == [("generate with truncated text encoders (2 words)", 2)]
    assert [(s["n"], s["blocks"]) for s in reporter.steps] == [(1, 1), (1, 2)]
    # the judge names "circle" for every image: one of the two words is right
    assert [r["accuracy"] for r in rows] == [0.5, 0.5] == [s["accuracy"] for s in reporter.steps]


@pytest.mark.parametrize("command", ["neighbors", "truncation", "tsne"])
def test_analyze_threads_sets_torch_threads_and_is_bounded(command, tiny_tasks, tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    missing = tmp_path / "missing.json"
    # the thread count is applied before the result is read, so a missing result still shows it
    res = CliRunner().invoke(app, ["analyze", command, "--result", str(missing), "--threads", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu"])
    assert "no such result file" in str(res.exception) and calls == [1], res.output
    res = CliRunner().invoke(app, ["analyze", command, "--result", str(missing), "--threads", "0", "--tasks-dir", str(tiny_tasks)])
    assert res.exit_code == 2 and "--threads" in res.output
