"""Words trained together equal words trained one at a time, on the real adapters (tiny random
configs): the property that lets a sweep split a task's words into units run anywhere."""

from __future__ import annotations

import pytest
import torch

from vwbench.registry import TaskRegistry
from vwbench.results.words_store import load_wordset
from vwbench.runner import RunOptions, run_task
from vwbench.units import plan_word_units, run_word_units, unit_done, unit_path


def _options(root, name: str) -> RunOptions:
    return RunOptions(out_dir=root / name, device="cpu", threads=1, steps=3)


@pytest.mark.parametrize("pair", ["clip->owlv2", "owlv2->clip", "sd->clip"])
def test_units_trained_alone_equal_the_words_trained_together(tiny_tasks, tmp_path, pair):
    task = TaskRegistry.from_dir(tiny_tasks).get(pair, "synth-tiny")
    together, alone = _options(tmp_path, "together"), _options(tmp_path, "alone")
    units = plan_word_units(task, together)
    assert len(units) == 3 * 2 and len({u.word_key for u in units}) == len(units)

    batch_paths = run_word_units(task, units, together)
    for unit in units:
        assert not unit_done(task, alone, unit)
        run_word_units(task, [unit], alone)
        assert unit_done(task, alone, unit)
    for unit, path in zip(units, batch_paths):
        a = load_wordset(path)
        b = load_wordset(unit_path(alone.out_dir, task, alone, unit))
        assert a is not None and b is not None and a.metadata["word_key"] == unit.word_key
        torch.testing.assert_close(b.vectors, a.vectors, rtol=1e-4, atol=1e-5)
        assert not torch.equal(a.vectors[0], a.vectors[0] * 0)  # trained, not empty
        # each unit stores its own word's loss curve, not the mean of the batch it trained in
        assert a.metadata["loss_curve"] == pytest.approx(b.metadata["loss_curve"], rel=1e-4, abs=1e-6)
    assert len({tuple(load_wordset(p).metadata["loss_curve"]) for p in batch_paths}) > 1

    # a plain run trains the whole set in one batch; the set assembled from units matches it
    plain = _options(tmp_path, "plain")
    plain_result = run_task(task, plain).result
    assembled_result = run_task(task, alone).result
    plain_words = load_wordset(next((plain.out_dir / "words").rglob("*.safetensors")))
    assembled_words = load_wordset(next(p for p in (alone.out_dir / "words").rglob("*.safetensors") if p.parent.suffix != ".units"))
    torch.testing.assert_close(assembled_words.vectors, plain_words.vectors, rtol=1e-4, atol=1e-5)
    assert assembled_words.concepts == plain_words.concepts and assembled_words.trials == plain_words.trials
    assert abs(assembled_result.value - plain_result.value) <= 1e-6 or pair.startswith("sd")


def test_a_stored_unit_is_not_trained_again(tiny_tasks, tmp_path):
    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    options = _options(tmp_path, "out")
    first, *rest = plan_word_units(task, options)
    path = run_word_units(task, [first], options)[0]
    stamp = path.stat().st_mtime_ns
    run_word_units(task, [first, *rest], options)
    assert path.stat().st_mtime_ns == stamp
    assert all(unit_done(task, options, u) for u in (first, *rest))


@pytest.mark.parametrize("pair", ["clip->clip", "sd->sd"])
def test_deltas_trained_together_equal_each_delta_trained_in_its_own_run(tiny_tasks, tmp_path, pair):
    from vwbench.runner import train_delta_words

    task = TaskRegistry.from_dir(tiny_tasks).get(pair, "synth-tiny")
    deltas = (0.1, 0.5, 2.0)

    def runs(name: str) -> list[RunOptions]:
        return [RunOptions(out_dir=tmp_path / name, device="cpu", threads=1, steps=3, delta=d) for d in deltas]

    train_delta_words(task, runs("together"))
    together = {p.stat().st_ino: load_wordset(p) for p in (tmp_path / "together" / "words").rglob("*.safetensors")}
    assert len(together) == len(deltas)
    for options in runs("apart"):
        run_task(task, options)
    apart = [load_wordset(p) for p in (tmp_path / "apart" / "words").rglob("*.safetensors")]
    by_key = {w.metadata["key"]: w for w in together.values()}
    assert sorted(by_key) == sorted(w.metadata["key"] for w in apart)  # same plans, same cache keys
    for alone in apart:
        batched = by_key[alone.metadata["key"]]
        torch.testing.assert_close(batched.vectors, alone.vectors, rtol=1e-4, atol=1e-5)
        assert batched.metadata["fracture_anchors"] == alone.metadata["fracture_anchors"]
        # each delta's word set stores its own words' loss curve, not the mean over every delta
        assert batched.metadata["loss_curve"] == pytest.approx(alone.metadata["loss_curve"], rel=1e-4, abs=1e-6)
    # the deltas' words differ (each kept its own ball), and a run of the batch reuses its words
    small, large = (by_key[w.metadata["key"]] for w in sorted(apart, key=lambda w: w.metadata["fracture"]["delta"])[::2])
    assert not torch.allclose(small.vectors, large.vectors)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "together" / "words").rglob("*.safetensors")}
    run_task(task, runs("together")[0])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert not list((tmp_path / "together" / "words").rglob("*.trainstate"))


def test_two_processes_training_the_same_delta_words_train_them_once(tiny_tasks, tmp_path, monkeypatch):
    """A delta sweep holds each plan's words lock (the one `vwbench run` takes) while it trains:
    a second one on the same --out waits, then finds the words stored, instead of training them
    again and deleting the first one's temp files. Sweep units lock their chunk the same way."""
    import threading

    import vwbench.pipeline_steps as steps
    from vwbench.runner import train_delta_words

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    real, calls, started = steps.train_plans_together, [], threading.Event()

    def slow_training(*args, **kwargs):
        calls.append(1)
        started.set()
        threading.Event().wait(1.0)  # the second caller arrives while this one trains
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "train_plans_together", slow_training)
    runs = [RunOptions(out_dir=tmp_path / "out", device="cpu", threads=1, steps=2, delta=d) for d in (0.1, 1.0)]
    first = threading.Thread(target=train_delta_words, args=(task, runs))
    first.start()
    started.wait(60)
    train_delta_words(task, runs)  # waits for the first one's locks, then reuses its words
    first.join()
    assert len(calls) == 1
    assert len(list((tmp_path / "out" / "words").rglob("*.safetensors"))) == 2
    assert not list((tmp_path / "out" / "words").rglob("*.tmp"))

    # two sweeps' jobs for the same chunk of units
    monkeypatch.undo()  # train_plans_together as it is (train_plan_words calls it)
    options = _options(tmp_path, "units")
    units = plan_word_units(task, options)
    real_units, calls[:] = steps.train_plan_words, []
    started.clear()

    def slow_units(*args, **kwargs):
        calls.append(1)
        started.set()
        threading.Event().wait(1.0)
        return real_units(*args, **kwargs)

    monkeypatch.setattr(steps, "train_plan_words", slow_units)
    first = threading.Thread(target=run_word_units, args=(task, units, options))
    first.start()
    started.wait(60)
    run_word_units(task, units, options)
    first.join()
    assert len(calls) == 1 and all(unit_done(task, options, u) for u in units)
