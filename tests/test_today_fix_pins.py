"""Mutation round 9 pins for today's review fixes: the SIGTERM route taken back after ray.init
(RayExecutor) and a failed shutdown that does not hide why the start failed, the files a
mixed-metric leaderboard error names, and the vocabulary row a submission's preflight maps."""

from __future__ import annotations

import signal
import types

import pytest

from vwbench.executors import ray_executor
from vwbench.executors.base import ExecutorSettings
from vwbench.interrupts import route_sigterm, sigterm_routed

from tests.executors.test_ray_init_sigterm import _fake_ray, _ray_like_init, default_sigterm  # noqa: F401 (fixture)
from tests.leaderboard.test_one_metric_per_task import _collect
from tests.leaderboard.test_rank_arithmetic import entry


def test_the_executor_takes_sigterm_back_from_rays_core_worker(default_sigterm, monkeypatch) -> None:  # noqa: F811
    assert route_sigterm()

    def init_then_core_worker_handler(ray, calls, kwargs):
        _ray_like_init(ray, calls, kwargs)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)  # what Ray's core worker installs last

    ray, calls, _ = _fake_ray(init_then_core_worker_handler)
    ray.is_initialized = lambda: False
    ray.cluster_resources = lambda: {"CPU": 2.0}
    ray.remote = lambda **options: (lambda function: function)
    monkeypatch.setattr(ray_executor, "_import_ray", lambda: ray)
    executor = ray_executor.RayExecutor(ExecutorSettings(workers=1, threads=1))
    assert sigterm_routed() and executor.slots == 1
    assert len(calls) == 1 and calls[0].startswith("init {'address': 'local'")


def test_a_shutdown_that_fails_does_not_hide_why_the_start_failed(default_sigterm) -> None:  # noqa: F811
    def refused(ray, calls, kwargs):
        raise ConnectionError("no cluster at 10.0.0.1:6379")

    ray, _, _ = _fake_ray(refused)

    def shutdown():
        raise RuntimeError("nothing to shut down")

    ray.shutdown = shutdown
    with pytest.raises(ConnectionError, match="no cluster"):
        ray_executor._init(ray, address="10.0.0.1:6379")


def test_a_mixed_metric_error_names_the_first_file_of_each_metric(tmp_path, monkeypatch) -> None:
    from vwbench.errors import UserError

    a, b, c = (entry("clip->owlv2", t, v).result for t, v in (("lstsq", 0.3), ("ridge", 0.5), ("procrustes", 0.4)))
    a.metric, b.metric, c.metric = "map", "map50", "map"
    with pytest.raises(UserError) as caught:
        _collect(tmp_path, monkeypatch, {"a.json": a, "b.json": b, "c.json": c})
    assert "different metrics: map (a.json), map50 (b.json); a leaderboard ranks one metric per task" in str(caught.value)


def test_a_submissions_preflight_maps_each_init_words_own_row_shaped_as_the_runs_words() -> None:
    import torch

    from vwbench.submissions.transfers import SandboxedTransfer

    vocab = types.SimpleNamespace(tokens=["a</w>", "photo</w>", "dog</w>"], matrix=torch.arange(12, dtype=torch.float64).reshape(3, 4))
    calls = []
    method = object.__new__(SandboxedTransfer)  # no sandbox: fit and map are recorded
    method.fit = lambda source, target: calls.append(("fit", source is vocab, target is vocab))
    method.map_words = lambda vectors, words: calls.append(("map", vectors.tolist(), vectors.dtype, words))
    method.preflight(vocab, vocab, ["dog", "zebra"], 2)  # zebra is no token: the first row stands in
    dog, first = [8.0, 9.0, 10.0, 11.0], [0.0, 1.0, 2.0, 3.0]
    assert calls == [("fit", True, True), ("map", [[dog, dog], [first, first]], torch.float32, ["dog", "zebra"])]
