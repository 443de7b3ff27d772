"""The feature cache leaves a nearly full disk's space to the run's words and result, and says so once."""

from __future__ import annotations

import torch

from vwbench.cache import features
from vwbench.cache.features import FeatureCache, free_space_reserve


def test_the_reserve_is_a_quarter_of_a_small_disk_and_at_most_256_mib() -> None:
    assert free_space_reserve(512 * 1024) == 128 * 1024
    assert free_space_reserve(2**30) == 2**28
    assert free_space_reserve(100 * 2**30) == 256 * 2**20


def test_a_full_disk_stores_nothing_and_warns_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(features, "room_to_store", lambda folder, n: False)
    said: list[str] = []
    cache = FeatureCache(tmp_path / "features", log=said.append)
    for key in ("a", "b"):
        cache.store("ns", key, {"x": torch.ones(3)})
    assert cache.not_stored == 2 and not (tmp_path / "features").exists()
    assert len(said) == 1 and said[0].startswith("warning: the disk of ") and "nearly full" in said[0]


def test_room_is_asked_of_the_nearest_existing_folder(tmp_path) -> None:
    # the cache folder is made only when something is stored: its disk is read from an existing parent
    assert features.room_to_store(tmp_path / "not" / "made" / "yet", 10**18) is False


def test_a_sweep_unit_tells_its_reporter_when_the_disk_stops_the_cache(tiny_tasks, tmp_path, monkeypatch) -> None:
    """Word units (what sweeps' workers train) load their models once per process; the cache's
    one warning still reaches the reporter of the call that trains, as a run's does."""
    from vwbench.progress import NullReporter
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions
    from vwbench.units import plan_word_units, release_contexts, run_word_units

    class Recording(NullReporter):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def log(self, message: str) -> None:
            self.lines.append(message)

    monkeypatch.setattr(features, "room_to_store", lambda folder, n: False)
    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    options = RunOptions(out_dir=tmp_path / "out", device="cpu", threads=1, steps=2)
    release_contexts()
    try:
        reporter = Recording()
        run_word_units(task, plan_word_units(task, options), options, reporter)
    finally:
        release_contexts()
    warnings = [line for line in reporter.lines if "nearly full" in line]
    assert len(warnings) == 1 and str(tmp_path / "out" / "features") in warnings[0]
    assert not (tmp_path / "out" / "features").exists()
