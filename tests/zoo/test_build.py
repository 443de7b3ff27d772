"""``vwbench zoo train``'s order: side by side, but never before the checkpoints a model is built on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vwbench.zoo.build import ENTRIES, run_in_order


def _recording_submit(pool, events, lock, fail=None):
    def job(name):
        with lock:
            events.append(("start", name))
        deadline = time.monotonic() + 2.0  # give a second worker the chance to start beside this one
        while time.monotonic() < deadline and sum(kind == "start" for kind, _ in events) < 2:
            time.sleep(0.01)
        if name == fail:
            raise RuntimeError(f"{name} failed")
        with lock:
            events.append(("end", name))
        return {"name": name}

    return lambda name: pool.submit(job, name)


def test_mini_sd_starts_only_after_its_text_tower_and_judge():
    assert set(ENTRIES["mini-sd"].after) == {"mini-sd-text", "mini-judge"}
    events, lock = [], threading.Lock()
    with ThreadPoolExecutor(max_workers=2) as pool:
        logs = run_in_order(list(ENTRIES), _recording_submit(pool, events, lock))
    assert list(logs) == list(ENTRIES) and all(logs[n] == {"name": n} for n in ENTRIES)
    start_sd = events.index(("start", "mini-sd"))
    assert events.index(("end", "mini-sd-text")) < start_sd and events.index(("end", "mini-judge")) < start_sd
    # the independent ones run side by side: the first two start before anything ends
    assert [kind for kind, _ in events[:2]] == ["start", "start"]


def test_an_entry_whose_dependencies_are_not_selected_runs_at_once():
    events, lock = [], threading.Lock()
    with ThreadPoolExecutor(max_workers=2) as pool:
        run_in_order(["mini-sd"], _recording_submit(pool, events, lock))
    assert events == [("start", "mini-sd"), ("end", "mini-sd")]


def test_a_failure_is_raised_and_its_dependants_never_start():
    events, lock = [], threading.Lock()
    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(RuntimeError, match="mini-judge failed"):
            run_in_order(["mini-judge", "mini-sd"], _recording_submit(pool, events, lock, fail="mini-judge"))
    assert ("start", "mini-sd") not in events
