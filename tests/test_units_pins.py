"""Pins of the run path's arithmetic (mutation-testing round 5): the word-norm check of
transferred words, the mean loss curve of a word set assembled from units, and the fracturing
facts a sweep unit stores. Expected values are worked out by hand in the comments."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import torch

from vwbench.errors import UserError
from vwbench.models.base import Vocabulary
from vwbench.pipeline_steps import WordsPlan, _word_set, check_mapped_words, overlong_words

# vocabulary rows of norm 5 (3, 4) and 1 (0, 1): the longest row is 5, the limit 1e4 x 5 = 5e4
ROWS = torch.tensor([[3.0, 4.0], [0.0, 1.0]])


def test_overlong_words_compares_with_ten_thousand_times_the_longest_row() -> None:
    assert overlong_words(torch.tensor([[3e4, 4e4]]), ROWS) is None  # norm exactly 5e4: not beyond
    assert overlong_words(torch.tensor([[[0.0, 4.9e4]], [[3e4, 4e4]]]), ROWS) is None
    assert overlong_words(torch.tensor([[0.0, 1.0], [3.6e4, 4.8e4]]), ROWS) == (6e4, 5.0)  # norm 6e4 > 5e4
    # float32 vectors whose squared norm overflows float32 are measured in float64
    assert overlong_words(torch.tensor([[3e30, 4e30]], dtype=torch.float32), ROWS) == pytest.approx((5e30, 5.0), rel=1e-6)
    assert overlong_words(torch.zeros(0, 2), ROWS) is None


def test_check_mapped_words_refuses_non_finite_and_overlong_words() -> None:
    target = NS(family="clip", vocabulary=lambda: Vocabulary(["a</w>", "b</w>"], ROWS))
    check_mapped_words(torch.tensor([[[3e4, 4e4]]]), target, "lstsq")
    with pytest.raises(UserError, match="non-finite"):
        check_mapped_words(torch.tensor([[[float("nan"), 0.0]]]), target, "lstsq")
    with pytest.raises(UserError, match="norm up to 6e\\+04 on clip, whose vocabulary rows are at most 5 long"):
        check_mapped_words(torch.tensor([[[3.6e4, 4.8e4]]]), target, "lstsq")


def _plan(**key_parts) -> WordsPlan:
    return WordsPlan("k" * 64, {"model": "clip", **key_parts}, ["circle", "square"], [0, 0], ["dog", "cat"])


def test_a_word_sets_loss_curve_is_the_mean_over_its_words_cut_to_the_shortest() -> None:
    source = NS(vocabulary=lambda: Vocabulary(["a</w>", "b</w>"], ROWS))
    # three words' curves (units can store curves of different lengths): means of the first two steps
    words = _word_set(source, _plan(), torch.zeros(2, 1, 2), [[1.0, 2.0, 9.0], [3.0, 4.0], [5.0, 9.0, 9.0]], {})
    assert words.metadata["loss_curve"] == [3.0, 5.0]  # (1 + 3 + 5) / 3, (2 + 4 + 9) / 3
    assert words.metadata["key"] == "k" * 64 and "fracture_anchors" not in words.metadata
    facts = {"ring": {"radius": 0.5}}
    assert _word_set(source, _plan(), torch.zeros(2, 1, 2), [], facts).metadata["fracture_anchors"] == facts
    assert _word_set(source, _plan(), torch.zeros(2, 1, 2), [], {}).metadata["loss_curve"] == []


def test_a_sweep_unit_stores_only_its_own_anchors_ball_facts() -> None:
    from vwbench.units import _anchor_facts

    plan = _plan(fracture={"delta": 0.5, "anchors": {"circle": "ring", "square": "cross"}})
    facts = {"ring": {"radius": 0.25}, "cross": {"radius": 0.75}}
    assert _anchor_facts(plan, 0, facts) == {"ring": {"radius": 0.25}}
    assert _anchor_facts(plan, 1, facts) == {"cross": {"radius": 0.75}}
    assert _anchor_facts(plan, 1, {"ring": {"radius": 0.25}}) == {}


def test_each_sweep_unit_stores_its_own_row_trial_curve_and_ball(tmp_path, monkeypatch) -> None:
    """Words 1 and 3 of a four-word plan trained together: row 0 of the batch is word 1, row 1 is
    word 3, and each unit file holds that word's vector, trial, init word and loss curve."""
    import vwbench.pipeline_steps as steps
    from vwbench.results import journal
    from vwbench.results.words_store import load_wordset
    from vwbench.units import _Context, _train_and_store

    plan = WordsPlan("p" * 64, {"fracture": {"anchors": {"circle": "ring", "square": "cross"}}},
                     ["circle", "circle", "square", "square"], [0, 1, 0, 1], ["dog", "cat", "cup", "bear"])
    vectors = torch.tensor([[[1.0, 1.0]], [[3.0, 3.0]]])
    losses = torch.tensor([[10.0, 20.0], [11.0, 21.0]])  # [steps 2, words 2]
    facts = {"ring": {"radius": 0.25}, "cross": {"radius": 0.75}}
    calls = []

    def train(source, split, hp, plan_, which, reporter, state_path):
        calls.append(which)
        return vectors, losses, facts

    monkeypatch.setattr(steps, "train_plan_words", train)
    monkeypatch.setattr(journal, "_saved", {})  # this test's records stay out of the process's journal
    paths = [tmp_path / "u1.safetensors", tmp_path / "u3.safetensors"]
    state = tmp_path / "chunk.trainstate"
    state.write_text("checkpoint")
    _train_and_store(_Context(NS(), NS(steps=2), NS(), plan, tmp_path / "set.safetensors"), [1, 3], paths, state, NS())
    assert calls == [[1, 3]] and not state.exists()
    one, three = (load_wordset(p) for p in paths)
    assert (one.concepts, one.trials, one.init_words, one.vectors.tolist()) == (["circle"], [1], ["cat"], [[[1.0, 1.0]]])
    assert (three.concepts, three.trials, three.init_words, three.vectors.tolist()) == (["square"], [1], ["bear"], [[[3.0, 3.0]]])
    assert one.metadata["word_key"] == "circle/1" and three.metadata["word_key"] == "square/1"
    assert one.metadata["loss_curve"] == [10.0, 11.0] and three.metadata["loss_curve"] == [20.0, 21.0]
    assert one.metadata["fracture_anchors"] == {"ring": {"radius": 0.25}} and three.metadata["fracture_anchors"] == {"cross": {"radius": 0.75}}
    assert one.metadata["batch_words"] == 2 and one.metadata["key"] == "p" * 64


def test_obtain_words_puts_each_trained_word_in_its_own_row_beside_the_stored_units(tmp_path, monkeypatch) -> None:
    """Words 0 and 1 of four are stored as sweep units: only words 2 and 3 train, and rows 2 and 3
    of the set are their vectors (row 0 of the batch is word 2)."""
    import vwbench.pipeline_steps as steps
    from vwbench.progress import NullReporter
    from vwbench.results import journal
    from vwbench.results.words_store import WordSet, save_wordset

    monkeypatch.setattr(journal, "_saved", {})
    source = NS(family="clip", vocabulary=lambda: Vocabulary(["a</w>", "b</w>"], ROWS))
    split = NS(name="synth")
    plan = WordsPlan("q" * 64, {"model": "clip"}, ["circle", "circle", "square", "square"], [0, 1, 0, 1], ["dog", "cat", "cup", "bear"])
    out = tmp_path / "out"
    path = steps.words_path(out, split, "clip", plan.key)
    for i in (0, 1):
        unit = WordSet(torch.full((1, 1, 2), float(i)), [plan.concepts[i]], [plan.trials[i]], [plan.init_words[i]],
                       {"key": plan.key, "word_key": plan.word_keys[i], "loss_curve": [4.0, 2.0]})
        save_wordset(steps.unit_word_path(path, plan.word_keys[i]), unit)
    calls = []

    def train(source_, split_, hp, plan_, which, reporter, state_path):
        calls.append(which)
        return torch.tensor([[[20.0, 20.0]], [[30.0, 30.0]]]), torch.tensor([[8.0, 10.0], [6.0, 8.0]]), {}

    monkeypatch.setattr(steps, "train_plan_words", train)
    words, got_path = steps.obtain_words(source, None, None, split, NS(steps=2), out, NullReporter(), plan=plan)
    assert calls == [[2, 3]] and got_path == path
    assert words.vectors[:, 0, 0].tolist() == [0.0, 1.0, 20.0, 30.0]
    assert words.metadata["loss_curve"] == [6.5, 4.5]  # (4 + 4 + 8 + 10) / 4, (2 + 2 + 6 + 8) / 4


def test_score_words_groups_by_concept_not_init_word() -> None:
    from vwbench.pipeline_steps import score_words
    from vwbench.predictions import LabelPredictions

    predictions = [
        LabelPredictions("dog", ["dog", "dog"], ["dog", "dog"]),  # 1.0
        LabelPredictions("dog", ["dog", "cat"], ["dog", "dog"]),  # 0.5
        LabelPredictions("cat", ["dog", "dog"], ["cat", "cat"]),  # 0.0
    ]
    words = NS(concepts=["dog", "dog", "cat"], trials=[0, 1, 0], init_words=["puppy", "hound", "kitten"])
    scored = score_words(predictions, words, NS(name="sd->clip", metric="generation_accuracy"), "generation")
    assert scored["summary"].per_concept == {"dog": 0.75, "cat": 0.0}
    assert scored["summary"].value == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert [(w["concept"], w["init_word"]) for w in scored["per_word"]] == [("dog", "puppy"), ("dog", "hound"), ("cat", "kitten")]


def test_evaluate_words_gives_the_target_each_words_concept_in_word_order() -> None:
    from vwbench.pipeline_steps import evaluate_words
    from vwbench.progress import NullReporter

    seen = {}

    def predict(mapped, word_concepts, heldout, ctx):
        seen.update(word_concepts=word_concepts, heldout=heldout, concepts=ctx.concepts, seed=ctx.seed, guidance=ctx.options["guidance_scale"])
        return ["p"] * len(word_concepts)

    target = NS(kind="classification", family="clip", predict=predict)
    split = NS(concept_names=["square", "circle"], heldout=["h0", "h1"])  # not in alphabetical order
    task = NS(eval=NS(generations_per_word=1, inference_steps=5, batch_size=2, guidance_scale=7.5))
    words = NS(concepts=["square", "circle", "square"])
    assert evaluate_words(target, None, torch.zeros(3, 1, 2), words, split, task, NS(seed=3), NullReporter()) == ["p"] * 3
    assert seen == {"word_concepts": [0, 1, 0], "heldout": ["h0", "h1"], "concepts": ["square", "circle"], "seed": 3, "guidance": 7.5}


def test_unit_path_refuses_another_out_dir(tmp_path) -> None:
    from vwbench.units import WordUnit, unit_path

    unit = WordUnit("clip->clip", "synth", "clip", "circle", 0)
    with pytest.raises(ValueError, match="differs from the options'"):
        unit_path(tmp_path / "a", None, NS(out_dir=tmp_path / "b"), unit)


def test_each_seed_places_its_units_in_its_own_word_set(tiny_tasks, tmp_path) -> None:
    """A process that plans sweeps of two seeds must not reuse the first seed's words' place."""
    from vwbench.registry import TaskRegistry
    from vwbench.runner import RunOptions
    from vwbench.units import plan_word_units, release_contexts, unit_path

    task = TaskRegistry.from_dir(tiny_tasks).get("clip->clip", "synth-tiny")
    out = tmp_path / "out"
    release_contexts()
    try:
        paths = []
        for seed in (0, 1):
            options = RunOptions(out_dir=out, device="cpu", threads=1, steps=0, trials=1, seed=seed)
            paths.append(unit_path(out, task, options, plan_word_units(task, options)[0]))
        assert paths[0].parent != paths[1].parent and paths[0].name == paths[1].name
    finally:
        release_contexts()


def test_a_fractured_result_records_its_delta_anchors_and_ball_facts() -> None:
    from vwbench.pipeline_steps import _fracture_record

    metadata = {"key": "k", "fracture": {"delta": 0.5, "anchors": {"circle": "ring"}}, "fracture_anchors": {"ring": {"radius": 0.25}}}
    assert _fracture_record(metadata) == {"delta": 0.5, "anchors": {"circle": "ring"}, "anchor_facts": {"ring": {"radius": 0.25}}}
    assert _fracture_record({"fracture": {"delta": 0.0, "anchors": {}}}) == {"delta": 0.0, "anchors": {}, "anchor_facts": {}}
    assert _fracture_record({"key": "k"}) is None


def test_no_trial_starts_from_another_concepts_word() -> None:
    from vwbench.data.base import Concept
    from vwbench.pipeline_steps import _init_plan

    # cat is dog's nearest word (cosine 0.995), then puppy (0.949); puppy is cat's nearest after dog
    vocab = Vocabulary(["dog</w>", "cat</w>", "puppy</w>", "kitten</w>", "bear</w>"],
                       torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.9, 0.3], [0.1, 1.0], [-1.0, 0.0]]))
    split = NS(name="d", concepts=[Concept("dog", "dog"), Concept("cat", "cat")])
    assert _init_plan(NS(vocabulary=lambda: vocab), split, 2) == (["dog", "dog", "cat", "cat"], [0, 1, 0, 1], ["dog", "puppy", "cat", "puppy"])
