"""Pins of the run path users rely on (mutation-testing round 4): the delta-sweep table's rows,
what a run reuses and what it recomputes, and the checks made before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.results import read_result


def invoke(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def tiny_run(tiny_tasks: Path, out: Path, pair: str, *extra) -> Path:
    invoke("run", "--task", pair, "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--out", out, "--device", "cpu", "--threads", "1", *extra)
    return max((out / "results").rglob("*.json"), key=lambda p: p.stat().st_mtime_ns)


# ---- the delta-sweep table ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fractured(tiny_tasks, tmp_path_factory) -> Path:
    """One fracturing result (clip->clip, delta 0.5, 0 steps, 1 trial)."""
    out = tmp_path_factory.mktemp("frac")
    return tiny_run(tiny_tasks, out, "clip->clip", "--delta", "0.5", "--steps", "0", "--trials", "1")


def _variant(src: Path, name: str, *, delta=None, value=None, created=None, **top) -> Path:
    data = json.loads(src.read_text())
    if delta is not None:
        data["fracture"]["delta"] = delta
    if value is not None:
        data["value"] = value
    if created is not None:
        data["provenance"]["created"] = created
    data.update(top)
    path = src.parent / name
    path.write_text(json.dumps(data))
    return path


def test_the_table_adds_only_stored_deltas_of_the_same_settings_newest_first(fractured, tmp_path) -> None:
    from vwbench.commands.fracture import table_rows

    folder = tmp_path / "results"
    folder.mkdir()
    own_path = folder / fractured.name
    shutil.copy(fractured, own_path)
    own = read_result(own_path)
    _variant(own_path, "a-old.json", delta=0.1, value=0.11, created="2000-01-01T00:00:00+00:00")
    newer = _variant(own_path, "b-new.json", delta=0.1, value=0.22, created="2999-01-01T00:00:00+00:00")
    _variant(own_path, "c-mid.json", delta=0.1, value=0.33, created="2500-01-01T00:00:00+00:00")
    _variant(own_path, "d-seed.json", delta=0.2, seed=own.seed + 1)
    _variant(own_path, "e-steps.json", delta=0.3, steps=own.steps + 1)
    _variant(own_path, "f-trials.json", delta=0.4, n_trials=own.n_trials + 1)
    _variant(own_path, "g-same-delta.json", delta=0.5, value=0.99, created="2999-01-01T00:00:00+00:00")
    bigger = _variant(own_path, "h-bigger.json", delta=2.0, value=0.44)
    _variant(own_path, "i-transfer.json", delta=3.0, transfer="other")
    (folder / "j-torn.json").write_text("{")
    rows = table_rows([[(own, own_path)]])
    assert [(r.delta, r.value, Path(r.result).name) for r in rows] == [
        (0.1, 0.22, newer.name), (0.5, own.value, own_path.name), (2.0, 0.44, bigger.name),
    ]


def test_left_out_counts_old_rows_missing_from_the_new_table(tmp_path) -> None:
    from vwbench.analysis.sweep import SweepRow, rows_to_json
    from vwbench.commands.fracture import _left_out

    def row(name: str, delta: float) -> SweepRow:
        return SweepRow("clip->clip", "synth-tiny", delta, "acc", 0.5, 0.4, 0.6, f"runs/results/{name}")

    table = tmp_path / "delta.json"
    table.write_text(json.dumps({"rows": rows_to_json([row("a.json", 0.1), row("b.json", 0.5), row("c.json", 1.0)])}))
    assert _left_out(table, [row("a.json", 0.1)]) == 2
    assert _left_out(table, [row("a.json", 0.1), row("b.json", 0.5), row("c.json", 1.0), row("d.json", 2.0)]) == 0
    assert _left_out(tmp_path / "none.json", []) == 0
    (tmp_path / "junk.json").write_text("[1]")
    assert _left_out(tmp_path / "junk.json", []) == 0


def test_deltas_accept_zero_and_refuse_negatives() -> None:
    from vwbench.commands.fracture import _deltas

    assert _deltas("0,0.5, 1") == [0.0, 0.5, 1.0]
    for bad in ("-0.1", "nan", "", "a"):
        with pytest.raises(UserError, match="--deltas"):
            _deltas(bad)


# ---- checks before training ----------------------------------------------------------------------


def _with_hp(task, **hp):
    return task.model_copy(update={"hyperparameters": task.hyperparameters.model_copy(update=hp)})


def test_a_passed_fit_check_does_not_pass_longer_words(tiny_tasks, tmp_path) -> None:
    """The per-process memo of passed checks is keyed by the word length: 4 vectors fit the tiny
    OWLv2, 20 do not, even right after the 4-vector check of the same checkpoint passed."""
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, check_task_fits

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->owlv2", "synth-tiny")
    options = RunOptions(out_dir=tmp_path, device="cpu", threads=1, feature_cache=False)
    check_task_fits(_with_hp(task, n_vectors=4), options)
    check_task_fits(_with_hp(task, n_vectors=4), options)
    with pytest.raises(UserError, match="owlv2: words of 20 vectors do not fit"):
        check_task_fits(_with_hp(task, n_vectors=20), options)


def test_a_target_loaded_only_for_the_fit_check_is_dropped_again(tiny_tasks, tmp_path) -> None:
    import torch

    from vwbench.registry import TaskRegistry
    from vwbench.runner import _FITTING_CHECKPOINTS, _ModelCache, check_words_fit_models

    task = _with_hp(TaskRegistry.from_dir(tiny_tasks).get("clip->owlv2", "synth-tiny"), n_vectors=3)
    _FITTING_CHECKPOINTS.difference_update({m for m in set(_FITTING_CHECKPOINTS) if m[3] == 3})
    models = _ModelCache(torch.device("cpu"), torch.float32, None)
    models.get(task.source, "source")
    check_words_fit_models(task, models, 3)
    assert models.holds(task.source) and not models.holds(task.target)
    assert [p["role"] for p in models.provenance] == ["source", "source", "target"]


def test_anchors_without_delta_are_refused_before_anything_loads(tiny_tasks) -> None:
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, check_run_options

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    with pytest.raises(UserError, match="--anchors applies to the fracturing experiment: give --delta too"):
        check_run_options(task, RunOptions(device="cpu", anchors=["ring"]))
    check_run_options(task, RunOptions(device="cpu", anchors=["ring"], delta=0.5))


# ---- what a run reuses and what it recomputes ------------------------------------------------------


def test_a_stored_result_of_other_steps_is_not_read_back(tiny_tasks, tmp_path) -> None:
    from vwbench.pipeline_steps import load_stored_result
    from vwbench.progress import NullReporter
    from vwbench.registry import TaskRegistry
    from vwbench.runner import resolve_hyperparameters, RunOptions

    path = tiny_run(tiny_tasks, tmp_path, "clip->clip", "--steps", "0", "--trials", "1")
    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    stored = read_result(path)
    hp = resolve_hyperparameters(task, RunOptions(steps=0, trials=1))
    assert load_stored_result(path, task, stored.transfer, hp, NullReporter().log) is not None
    for change in ({"steps": 1}, {"trials": 2}, {"seed": 5}):
        other = hp.model_copy(update=change)
        assert load_stored_result(path, task, stored.transfer, other, NullReporter().log) is None, change
    assert load_stored_result(path, task, "lstsq", hp, NullReporter().log) is None


def test_a_result_key_holds_the_eval_settings_and_not_the_judge_of_a_non_generation_target(tiny_tasks, tmp_path) -> None:
    import torch

    from vwbench.pipeline_steps import result_key
    from vwbench.registry import TaskRegistry

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->owlv2", "synth-tiny")
    base = result_key("w", "lstsq", task, {"target": {"f": "1"}}, "data", torch.float32)
    assert base == result_key("w", "lstsq", task, {"target": {"f": "1"}}, "data", torch.float32)
    other_eval = task.model_copy(update={"eval": task.eval.model_copy(update={"batch_size": task.eval.batch_size + 1})})
    assert result_key("w", "lstsq", other_eval, {"target": {"f": "1"}}, "data", torch.float32) != base
    assert result_key("w", "ridge", task, {"target": {"f": "1"}}, "data", torch.float32) != base
    assert result_key("w2", "lstsq", task, {"target": {"f": "1"}}, "data", torch.float32) != base
    assert result_key("w", "lstsq", task, {"target": {"f": "2"}}, "data", torch.float32) != base
    # the run puts the judge's files in only for a generation target: an owlv2 result is found again
    out = tmp_path / "o"
    first = tiny_run(tiny_tasks, out, "clip->owlv2", "--steps", "0", "--trials", "1", "--transfer", "lstsq")
    again = CliRunner().invoke(app, ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out),
                                     "--device", "cpu", "--threads", "1", "--steps", "0", "--trials", "1", "--transfer", "lstsq"])
    assert again.exit_code == 0 and "reusing the stored result" in again.output
    assert [p.name for p in (out / "results").rglob("*.json")] == [first.name]


def test_the_model_cache_loads_each_checkpoint_once_and_keeps_checkpoints_apart(tiny_tasks) -> None:
    """The judge is a CLIP of its own weights: one run's cache must not hand the source CLIP back
    for it (nor load the source twice, x->x)."""
    import torch

    from vwbench.registry import TaskRegistry
    from vwbench.runner import _ModelCache

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    judge = TaskRegistry.from_dir(tiny_tasks).get("sd->sd", "synth-tiny").judge
    assert judge.family == task.source.family == "clip" and judge.checkpoint != task.source.checkpoint
    models = _ModelCache(torch.device("cpu"), torch.float32, None)
    source, _ = models.get(task.source, "source")
    target, _ = models.get(task.target, "target")
    assert target is source
    judged, resolved = models.get(judge, "judge")
    assert judged is not source and resolved.path.name == "judge"
    assert not torch.equal(judged.vocabulary().matrix, source.vocabulary().matrix)
    models.drop(judge)
    assert models.holds(task.source) and not models.holds(judge)


def test_submitted_words_with_uneven_trials_per_concept_are_refused_before_any_model_loads(tiny_tasks, tmp_path) -> None:
    """A file with 3, 1 and 2 words per concept was run with n_trials 3 (the most), which made the
    leaderboard prefer it as a run of more trials; it is refused now, every concept needs as many."""
    import torch

    from tests.submissions.helpers import embeddings
    from vwbench.models.clip import OpenClipAdapter

    vocab = OpenClipAdapter.from_pretrained(tiny_tasks.parent / "clip").vocabulary()
    g = torch.Generator().manual_seed(0)
    words = {"circle": torch.randn(3, 4, vocab.dim, generator=g), "square": torch.randn(1, 4, vocab.dim, generator=g),
             "triangle": torch.randn(2, 4, vocab.dim, generator=g)}
    path = embeddings(tmp_path / "words.safetensors", words, vocab_hash=vocab.hash())
    res = CliRunner().invoke(app, ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "runs"), "--device", "cpu", "--embeddings", str(path)])
    assert isinstance(res.exception, UserError), res.output
    assert "concepts differ in their number of words (circle: 3, square: 1, triangle: 2)" in str(res.exception)
    assert not (tmp_path / "runs").exists()


def test_a_source_too_small_for_the_words_fails_before_training(tiny_tasks, tmp_path) -> None:
    """20 vectors fit the tiny CLIP target (32 positions) but not the tiny OWLv2 source (16)."""
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, run_task

    task = _with_hp(TaskRegistry.from_dir(tiny_tasks).get("owlv2->clip", "synth-tiny"), n_vectors=20)
    out = tmp_path / "o"
    with pytest.raises(UserError, match="owlv2: words of 20 vectors do not fit its prompt"):
        run_task(task, RunOptions(out_dir=out, device="cpu", threads=1, steps=1, trials=1, feature_cache=False))
    assert not (out / "words").exists() and not (out / "results").exists()


def test_the_words_key_holds_the_init_words(tiny_tasks, monkeypatch) -> None:
    """Words trained from other init words (a dataset's init word edited) are other words: their
    cache key differs, so the stored ones are not reused."""
    import torch

    import vwbench.pipeline_steps as steps
    from vwbench.registry import TaskRegistry, dataset_loader
    from vwbench.runner import RunOptions, _ModelCache, resolve_hyperparameters

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    hp = resolve_hyperparameters(task, RunOptions(steps=0, trials=1))
    split = steps.load_split(task, hp, dataset_loader(task.dataset.loader), None)
    source, ckpt = _ModelCache(torch.device("cpu"), torch.float32, None).get(task.source, "source")
    first = steps.plan_words(source, ckpt, split, hp)
    assert steps.plan_words(source, ckpt, split, hp).key == first.key
    real = steps.choose_init_words
    monkeypatch.setattr(steps, "choose_init_words", lambda vocab, word, trials, exclude=(): real(vocab, "dog", trials, exclude=exclude))
    other = steps.plan_words(source, ckpt, split, hp)
    assert other.init_words == ["dog"] * 3 != first.init_words
    assert other.key != first.key


def test_training_checkpoints_every_tenth_of_the_run_rounded_up() -> None:
    from vwbench.pipeline_steps import checkpoint_interval

    assert [checkpoint_interval(s) for s in (0, 1, 9, 10, 11, 15, 20, 21, 99, 100, 101)] == [1, 1, 1, 1, 2, 2, 2, 3, 10, 10, 11]


def test_a_unit_word_file_is_used_only_for_its_own_plan_and_word(tmp_path) -> None:
    import torch

    from vwbench.pipeline_steps import load_unit_word, unit_word_path
    from vwbench.results.words_store import WordSet, save_wordset

    path = unit_word_path(tmp_path / "abc.safetensors", "circle/0")
    assert path.parent == tmp_path / "abc.units" and path.name.startswith("circle-t0-")
    assert unit_word_path(tmp_path / "abc.safetensors", "circle/1") != path
    path.parent.mkdir()
    save_wordset(path, WordSet(vectors=torch.zeros(1, 2, 3), concepts=["circle"], trials=[0], init_words=["ring"],
                               metadata={"key": "K", "word_key": "circle/0"}))
    assert load_unit_word(path, "K", "circle/0") is not None
    assert load_unit_word(path, "K", "circle/1") is None  # a file of another word (copied or renamed here)
    assert load_unit_word(path, "K2", "circle/0") is None
    assert load_unit_word(tmp_path / "missing.safetensors", "K", "circle/0") is None


def test_reused_words_drop_the_training_checkpoint_a_killed_run_left(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "o"
    result = tiny_run(tiny_tasks, out, "clip->clip", "--steps", "1", "--trials", "1")
    words = Path(read_result(result).provenance.words_file)
    state = words.with_suffix(".trainstate")
    state.write_bytes(b"left by a run killed after saving its words")
    result.unlink()
    output = invoke("run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--out", out, "--device", "cpu",
                    "--threads", "1", "--steps", "1", "--trials", "1")
    assert "reusing trained words" in output and result.exists()
    assert not state.exists()


def test_a_local_run_refuses_an_absent_cuda_before_out_is_made_but_workers_elsewhere_may_have_it(tiny_tasks, tmp_path, monkeypatch) -> None:
    import torch

    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions, check_run_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    with pytest.raises(UserError, match="--device cuda was asked for but no CUDA device is available"):
        check_run_options(task, RunOptions(device="cuda"))
    check_run_options(task, RunOptions(device="cuda"), runs_here=False)
    for here in (True, False):
        with pytest.raises(UserError, match="unknown device 'tpu'"):
            check_run_options(task, RunOptions(device="tpu"), runs_here=here)
    res = CliRunner().invoke(app, ["run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "o"),
                                   "--device", "cuda", "--steps", "0", "--trials", "1"])
    assert isinstance(res.exception, UserError) and "no CUDA device is available" in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_a_stored_loss_curve_keeps_about_a_hundred_points() -> None:
    import torch

    from vwbench.pipeline_steps import stored_curve

    losses = torch.arange(500, dtype=torch.float32)[:, None].repeat(1, 2)
    losses[:, 1] += 2
    assert stored_curve(losses[:50], 50) == [float(i) + 1 for i in range(50)]  # under 100 steps: every step
    curve = stored_curve(losses[:250], 250)
    assert len(curve) == 125 and curve[:3] == [1.0, 3.0, 5.0]
    assert len(stored_curve(losses, 500)) == 100


def test_a_run_whose_target_does_not_generate_needs_no_judge_checkpoint(tiny_tasks, tmp_path) -> None:
    """The judge evaluates generation only: a tasks folder whose judge checkpoint is missing still
    runs detection and classification tasks."""
    import yaml

    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    tier_file = tasks / "models" / "tiny.yaml"
    tier = yaml.safe_load(tier_file.read_text())
    tier["judge"]["checkpoint"]["path"] = str(tmp_path / "no-judge-here")
    tier_file.write_text(yaml.safe_dump(tier))
    result = read_result(tiny_run(tasks, tmp_path / "o", "clip->owlv2", "--steps", "0", "--trials", "1", "--transfer", "lstsq"))
    assert [c.role for c in result.provenance.checkpoints] == ["source", "target"]
