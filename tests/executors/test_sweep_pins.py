"""Pins of a sweep's plan (mutation-testing round 4): which words are grouped and counted as
stored, which result jobs run per transfer, and the chunk checkpoints a result job cleans up."""

from __future__ import annotations

import pytest

from vwbench.errors import UserError


def _registry(tiny_tasks):
    from vwbench.registry import TaskRegistry

    return TaskRegistry.from_dir(tiny_tasks)


def _options(out, **kw):
    from vwbench.runner import RunOptions

    return RunOptions(out_dir=out, device="cpu", threads=1, steps=0, trials=1, **kw)


def test_a_plan_counts_units_groups_sources_and_runs_in_domain_tasks_once(tiny_tasks, tmp_path) -> None:
    from vwbench.executors.sweep_jobs import plan_sweep, run_result_unit, train_word_chunk

    reg = _registry(tiny_tasks)
    tasks = [reg.get(n, "synth-tiny") for n in ("clip->clip", "clip->owlv2", "owlv2->owlv2")]
    options = _options(tmp_path / "out")
    plan = plan_sweep(tasks, ["lstsq", "ridge"], options, slots=1, split_groups=False)
    assert (plan.word_units, plan.stored_units, plan.units_to_train) == (6, 0, 6)  # 3 concepts x 1 trial x 2 sources
    assert [j.label for j in plan.word_jobs] == ["train 3 word(s) of clip on synth-tiny", "train 3 word(s) of owlv2 on synth-tiny"]
    assert all(j.fn is train_word_chunk for j in plan.word_jobs)
    assert [j.label for j in plan.result_jobs] == [
        "clip->clip on synth-tiny", "clip->owlv2 on synth-tiny (lstsq)", "clip->owlv2 on synth-tiny (ridge)", "owlv2->owlv2 on synth-tiny",
    ]
    assert all(j.fn is run_result_unit for j in plan.result_jobs)
    assert [j.args[1].transfer for j in plan.result_jobs] == [None, "lstsq", "ridge", None]
    parts = plan_sweep(tasks[:1], None, options, slots=2, split_groups=True)
    assert [j.label for j in parts.word_jobs] == ["train 2 word(s) of clip on synth-tiny, part 1/2", "train 1 word(s) of clip on synth-tiny, part 2/2"]
    for job in plan.word_jobs:
        job.fn(*job.args)
    again = plan_sweep(tasks, ["lstsq"], options)
    assert (again.word_units, again.stored_units, again.units_to_train) == (6, 6, 0) and again.word_jobs == []
    assert len(again.result_jobs) == 3
    assert plan_sweep(tasks, None, options, word_phase=False).word_jobs == []


def test_tasks_of_one_source_with_other_settings_train_their_own_words(tiny_tasks, tmp_path) -> None:
    from vwbench.executors.sweep_jobs import plan_sweep

    reg = _registry(tiny_tasks)
    a = reg.get("clip->clip", "synth-tiny")
    b = reg.get("clip->owlv2", "synth-tiny")
    b = b.model_copy(update={"hyperparameters": b.hyperparameters.model_copy(update={"lr": b.hyperparameters.lr * 2})})
    plan = plan_sweep([a, b], None, _options(tmp_path / "out"), slots=1, split_groups=False)
    assert plan.word_units == 6 and len(plan.word_jobs) == 2
    same = plan_sweep([a, reg.get("clip->owlv2", "synth-tiny")], None, _options(tmp_path / "out"), slots=1, split_groups=False)
    assert same.word_units == 3 and len(same.word_jobs) == 1


def test_a_result_job_removes_the_chunk_checkpoints_of_its_stored_word_set(tiny_tasks, tmp_path) -> None:
    from pathlib import Path

    from vwbench.executors.sweep_jobs import run_result_unit

    task = _registry(tiny_tasks).get("clip->clip", "synth-tiny")
    options = _options(tmp_path / "out")
    first = run_result_unit(task, options)
    assert not first.reused
    words = Path(first.result.provenance.words_file)
    stale = words.with_suffix(".units") / "chunk-0123456789abcdef.trainstate"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"stale")
    again = run_result_unit(task, options)
    assert again.reused and again.path == first.path
    assert not stale.exists()


def test_a_unit_of_another_source_or_dataset_is_refused(tiny_tasks, tmp_path) -> None:
    from dataclasses import replace

    from vwbench.units import plan_word_units, run_word_units

    reg = _registry(tiny_tasks)
    task = reg.get("clip->clip", "synth-tiny")
    options = _options(tmp_path / "out")
    unit = plan_word_units(task, options)[0]
    for bad in (replace(unit, source="owlv2"), replace(unit, dataset="synth-other"), replace(unit, concept="nowhere")):
        with pytest.raises(UserError, match="does not belong to task clip->clip on synth-tiny"):
            run_word_units(task, [bad], options)
    assert not (tmp_path / "out" / "words").exists() or not any((tmp_path / "out" / "words").rglob("*.safetensors"))


def test_a_result_job_leaves_chunk_checkpoints_of_words_outside_its_out_alone(tiny_tasks, tmp_path) -> None:
    """A results folder copied elsewhere still names the words of the first folder: a result job
    there must not delete that folder's checkpoints (their locks are in the other folder)."""
    import shutil
    from pathlib import Path

    from vwbench.executors.sweep_jobs import run_result_unit

    task = _registry(tiny_tasks).get("clip->clip", "synth-tiny")
    first = run_result_unit(task, _options(tmp_path / "a"))
    words = Path(first.result.provenance.words_file)
    assert words.resolve().is_relative_to((tmp_path / "a").resolve())
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    foreign = words.with_suffix(".units") / "chunk-0123456789abcdef.trainstate"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_bytes(b"another folder's")
    again = run_result_unit(task, _options(tmp_path / "b"))
    assert again.reused and Path(again.result.provenance.words_file) == words
    assert foreign.read_bytes() == b"another folder's"


def test_words_a_plain_run_stored_as_a_whole_set_count_as_stored_units(tiny_tasks, tmp_path) -> None:
    from vwbench.executors.sweep_jobs import plan_sweep
    from vwbench.runner import run_task
    from vwbench.units import plan_word_units, release_contexts, set_stored, unit_done

    task = _registry(tiny_tasks).get("clip->clip", "synth-tiny")
    options = _options(tmp_path / "out")
    run = run_task(task, options)
    from pathlib import Path

    words = Path(run.result.provenance.words_file)
    assert set_stored(words) and not words.with_suffix(".units").exists()
    release_contexts()
    assert all(unit_done(task, options, u) for u in plan_word_units(task, options))
    plan = plan_sweep([task], None, options)
    assert (plan.word_units, plan.stored_units, plan.word_jobs) == (3, 3, [])
    # a word set stored under another key's name is not this set
    other = words.with_name("0000000000000000.safetensors")
    other.write_bytes(words.read_bytes())
    assert not set_stored(other)


def test_each_delta_places_its_units_in_its_own_word_set(tiny_tasks, tmp_path) -> None:
    from vwbench.units import plan_word_units, release_contexts, unit_path

    task = _registry(tiny_tasks).get("clip->clip", "synth-tiny")
    out = tmp_path / "out"
    release_contexts()
    paths = {}
    for delta in (0.1, 1.0, None):
        options = _options(out, delta=delta)
        unit = plan_word_units(task, options)[0]
        assert unit.delta == delta
        paths[delta] = unit_path(out, task, options, unit)
    assert len(set(paths.values())) == 3
    assert len({p.parent for p in paths.values()}) == 3
    release_contexts()


def test_a_delta_sweep_leaves_a_set_with_stored_units_to_the_run(tiny_tasks, tmp_path) -> None:
    """train_delta_words trains every delta's words in one batch, except a delta whose words a
    sweep already stored in part as units: its run assembles them and trains only the rest."""
    from vwbench.runner import run_task, train_delta_words
    from vwbench.units import plan_word_units, release_contexts, run_word_units, set_stored, unit_path

    task = _registry(tiny_tasks).get("clip->clip", "synth-tiny")
    out = tmp_path / "out"
    release_contexts()
    half, whole = _options(out, delta=0.5), _options(out, delta=1.0)
    unit = plan_word_units(task, half)[0]
    (stored_unit,) = run_word_units(task, [unit], half)
    assert stored_unit == unit_path(out, task, half, unit) and stored_unit.exists()
    half_set = stored_unit.parent.with_suffix(".safetensors")
    whole_set = unit_path(out, task, whole, plan_word_units(task, whole)[0]).parent.with_suffix(".safetensors")
    release_contexts()
    train_delta_words(task, [half, whole])
    assert set_stored(whole_set) and not half_set.exists()
    run = run_task(task, half)
    assert run.result.provenance.words_file == str(half_set) and set_stored(half_set)
