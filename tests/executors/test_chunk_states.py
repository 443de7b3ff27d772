"""The training checkpoints of a sweep's word chunks (``chunk-*.trainstate``) go once their words
are stored, also when a later sweep cut the same words into other chunks, but never while another
process trains that chunk (holds its lock)."""

from __future__ import annotations

from pathlib import Path

import pytest

import vwbench.pipeline_steps as steps
from vwbench.executors.sweep_jobs import run_result_unit
from vwbench.registry import TaskRegistry
from vwbench.results.locks import exclusive
from vwbench.runner import RunOptions
from vwbench.units import plan_word_units, remove_finished_chunk_states, run_word_units, unit_done, unit_path


class Stopped(Exception):
    """A sweep stopped after its chunk saved a training checkpoint, before it stored its words."""


def _setup(tiny_tasks: Path, out: Path):
    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    options = RunOptions(out_dir=out, device="cpu", threads=1, steps=3)
    units = plan_word_units(task, options)
    return task, options, units, unit_path(out, task, options, units[0]).parent


def _stop_after_training(monkeypatch) -> None:
    real = steps.train_plan_words

    def train_then_stop(*args, **kwargs):
        real(*args, **kwargs)  # saves the chunk's checkpoint as it trains
        raise Stopped

    monkeypatch.setattr(steps, "train_plan_words", train_then_stop)


def test_a_rechunked_sweep_removes_the_old_chunks_checkpoint(tiny_tasks, tmp_path, monkeypatch):
    task, options, units, units_dir = _setup(tiny_tasks, tmp_path / "out")
    _stop_after_training(monkeypatch)
    with pytest.raises(Stopped):
        run_word_units(task, units, options)  # the first sweep: one chunk of all six words
    monkeypatch.undo()
    [old] = units_dir.glob("chunk-*.trainstate")

    run_word_units(task, units[:3], options)  # a later sweep cuts them in two chunks
    assert old.is_file()  # half the words are still to train: the old checkpoint may serve yet
    run_word_units(task, units[3:], options)
    assert all(unit_done(task, options, u) for u in units)
    assert not list(units_dir.glob("chunk-*.trainstate"))


def test_a_chunk_checkpoint_that_another_process_holds_is_kept(tiny_tasks, tmp_path):
    task, options, units, units_dir = _setup(tiny_tasks, tmp_path / "out")
    run_word_units(task, units, options)
    state = units_dir / "chunk-0123456789abcdef.trainstate"
    state.write_bytes(b"a checkpoint")
    with exclusive(options.out_dir, state.stem, what="that chunk"):  # as run_word_units holds it while training
        assert remove_finished_chunk_states(options.out_dir, units_dir.with_suffix(".safetensors"), lambda: True) == []
        run_word_units(task, units, options)
        assert state.read_bytes() == b"a checkpoint"
    run_word_units(task, units, options)  # every word stored: nothing trains, the free checkpoint goes
    assert not state.exists()


def _stopped_chunk(monkeypatch, task, options, units, units_dir) -> Path:
    """The checkpoint a sweep chunk of ``units`` saved before it stopped (no word of it stored)."""
    _stop_after_training(monkeypatch)
    with pytest.raises(Stopped):
        run_word_units(task, units, options)
    monkeypatch.undo()
    [state] = units_dir.glob("chunk-*.trainstate")
    return state


def test_a_result_job_removes_the_chunk_checkpoints_of_its_stored_word_set(tiny_tasks, tmp_path, monkeypatch):
    """A remote sweep stopped mid-chunk, then a local one (the whole set trains in its first task)."""
    task, options, units, units_dir = _setup(tiny_tasks, tmp_path / "out")
    old = _stopped_chunk(monkeypatch, task, options, units[:2], units_dir)
    outcome = run_result_unit(task, options)
    assert not outcome.reused and Path(outcome.result.provenance.words_file) == units_dir.with_suffix(".safetensors")
    assert not old.exists()


@pytest.mark.parametrize("stored_first", [2, 0], ids=["some words stored as units", "no word stored"])
def test_a_run_that_stores_the_set_removes_a_stopped_chunks_checkpoint(tiny_tasks, tmp_path, monkeypatch, stored_first):
    """A sweep chunk saved a checkpoint and stopped; `vwbench run` then trains the missing words
    (all of them when no unit was stored) and stores the set."""
    from vwbench.runner import run_task

    task, options, units, units_dir = _setup(tiny_tasks, tmp_path / "out")
    run_word_units(task, units[:stored_first], options)
    old = _stopped_chunk(monkeypatch, task, options, units[stored_first : stored_first + 2], units_dir)
    run_task(task, options)
    assert not old.exists()
