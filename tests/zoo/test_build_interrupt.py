"""`vwbench zoo train --jobs 2` stopped by something that reaches only vwbench itself (SIGTERM, an
error in the parent): the workers are stopped too, instead of the parent waiting for models that
may train for 45 more minutes."""

from __future__ import annotations

import time

import pytest

from tests.processes import alive
from tests.zoo import sleepy_worker
from vwbench.zoo import build


def test_an_interrupt_in_the_parent_stops_the_training_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "_train_in_worker", sleepy_worker.sleep_forever)
    started = []

    def run_in_order(names, submit):
        started.append(submit(names[0]))
        end = time.monotonic() + 60
        while not list(tmp_path.glob("*.pid")) and time.monotonic() < end:
            time.sleep(0.05)
        raise KeyboardInterrupt  # what a routed SIGTERM raises here

    monkeypatch.setattr(build, "run_in_order", run_in_order)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        build.train_zoo(tmp_path, only=["mini-clip", "mini-judge"], log=lambda _: None, jobs=2)
    assert time.monotonic() - start < 60
    (pid_file,) = tmp_path.glob("*.pid")
    pid = int(pid_file.read_text())
    end = time.monotonic() + 10
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(pid)
    assert started and started[0].done()
