"""Every setting that changes a stored artefact is in its cache key, so a run with other settings
never reuses a stale one: the feature cache's namespace and image key, the trained words' key
(``plan_words``) and a result's key (``result_key``); and the run's settings reach the trainer
and the evaluation (``train_plans_together``, ``evaluate_words``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tests.training.test_trainer import QuadraticModel
from vwbench.cache import FeatureCache, image_key
from vwbench.data.base import Concept
from vwbench.models.base import Vocabulary
from vwbench.progress import NullReporter
from vwbench.registry.schema import Hyperparameters

REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks"


# --- feature cache -----------------------------------------------------------------------------


def test_image_key_holds_the_size_not_only_the_bytes() -> None:
    tall, wide = Image.new("RGB", (2, 8), (1, 2, 3)), Image.new("RGB", (8, 2), (1, 2, 3))
    assert tall.tobytes() == wide.tobytes()
    assert image_key(tall) != image_key(wide)
    assert image_key(tall) == image_key(Image.new("RGB", (2, 8), (1, 2, 3)))
    assert image_key(tall) != image_key(Image.new("RGB", (2, 8), (1, 2, 4)))


def _model(dtype=torch.float32) -> QuadraticModel:
    model = QuadraticModel(torch.zeros(1, 2))
    model.dtype = dtype
    return model


@pytest.mark.parametrize("change", ["files", "checkpoint", "dtype", "kind"])
def test_features_of_another_checkpoint_dtype_or_kind_are_computed_again(tmp_path, change) -> None:
    cache = FeatureCache(tmp_path)
    images = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(2)]
    calls: list[int] = []

    def compute(batch):
        calls.append(len(batch))
        return [{"x": torch.ones(2)} for _ in batch]

    identity = {"checkpoint": "ckpt-a", "files": {"model.safetensors": "aaa"}}
    first = _model()
    first.use_feature_cache(cache, identity)
    first.cached_image_side("image_features", images, compute)
    same = _model()
    same.use_feature_cache(cache, dict(identity))
    same.cached_image_side("image_features", images, compute)
    assert calls == [2]  # the same checkpoint, dtype and kind read the stored features

    other, kind = _model(torch.float16 if change == "dtype" else torch.float32), "image_features"
    if change == "files":
        identity = {**identity, "files": {"model.safetensors": "bbb"}}
    elif change == "checkpoint":
        identity = {**identity, "checkpoint": "ckpt-b"}
    elif change == "kind":
        kind = "vae_latents@64"
    other.use_feature_cache(cache, identity)
    other.cached_image_side(kind, images, compute)
    assert calls == [2, 2]


def test_a_run_names_its_checkpoints_files_in_the_feature_namespace(tmp_path, monkeypatch) -> None:
    from vwbench import runner

    files = {"open_clip_model.safetensors": "f" * 64}
    resolved = SimpleNamespace(name="tiny-clip", revision=None, files=files, path=tmp_path / "clip")
    monkeypatch.setattr(runner._ModelCache, "resolve", lambda self, spec: resolved)
    monkeypatch.setattr(runner, "load_adapter", lambda family, path, device, dtype: _model())
    cache = runner._ModelCache(torch.device("cpu"), torch.float32, None, tmp_path / "features")
    spec = SimpleNamespace(family="clip", checkpoint=None)
    model, _ = cache.get(spec, "source")
    assert model.feature_cache is cache.feature_cache
    assert model.feature_identity["files"] == files and model.feature_identity["checkpoint"] == "tiny-clip"


# --- trained words: plan_words ------------------------------------------------------------------

VOCAB = Vocabulary(
    ["dog</w>", "cat</w>", "puppy</w>", "kitten</w>", "house</w>", "table</w>"],
    torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.2], [0.1, 0.9], [-1.0, 0.1], [0.5, -0.5]]),
)


def _plan_inputs(**change):
    source = SimpleNamespace(family="clip", dtype=change.get("dtype", torch.float32), vocabulary=lambda: change.get("vocab", VOCAB))
    ckpt = SimpleNamespace(name=change.get("name", "tiny-clip"), revision=change.get("revision"), files=change.get("files", {"w": "aaa"}))
    concepts = change.get("concepts", [Concept("dog", "dog"), Concept("cat", "cat")])
    split = SimpleNamespace(concepts=concepts, manifest=SimpleNamespace(hash=change.get("dataset", "manifest-1")))
    hp = change.get("hp", Hyperparameters(trials=2))
    return source, ckpt, split, hp, change.get("fracture")


def _plan(**change):
    from vwbench.pipeline_steps import plan_words

    return plan_words(*_plan_inputs(**change))


def test_plan_words_is_deterministic() -> None:
    a, b = _plan(), _plan()
    assert a.key == b.key and a.init_words == ["dog", "puppy", "cat", "kitten"]
    assert a.word_keys == ["dog/0", "dog/1", "cat/0", "cat/1"]


@pytest.mark.parametrize("change", [
    {"files": {"w": "bbb"}},
    {"name": "other-clip"},
    {"revision": "abc123"},
    {"dataset": "manifest-2"},
    {"dtype": torch.float16},
    {"hp": Hyperparameters(trials=2, lr=2e-4)},
    {"hp": Hyperparameters(trials=2, seed=1)},
    {"hp": Hyperparameters(trials=2, betas=(0.8, 0.999))},
    {"hp": Hyperparameters(trials=2, eps=1e-6)},
    {"hp": Hyperparameters(trials=2, n_vectors=2)},
    {"hp": Hyperparameters(trials=2, steps=10)},
    {"hp": Hyperparameters(trials=2, batch_size=4)},
    {"hp": Hyperparameters(trials=2, images_per_concept=4)},
    # another init word for a concept (e.g. another dataset version) with the same names
    {"concepts": [Concept("dog", "puppy"), Concept("cat", "cat")]},
    # the same init words, another concept name
    {"concepts": [Concept("hound", "dog"), Concept("cat", "cat")]},
], ids=lambda c: next(iter(c)) + ("." + next(k for k, v in c["hp"].model_dump().items() if v != Hyperparameters(trials=2).model_dump()[k]) if "hp" in c else ""))
def test_every_training_input_changes_the_words_key(change) -> None:
    assert _plan(**change).key != _plan().key


def test_the_trainer_version_and_the_fracture_are_in_the_words_key(monkeypatch) -> None:
    from vwbench import pipeline_steps
    from vwbench.training.fracture import Fracture

    base = _plan().key
    half = _plan(fracture=Fracture(0.5, {"dog": "dog", "cat": "cat"}))
    assert half.key != base
    assert _plan(fracture=Fracture(1.0, {"dog": "dog", "cat": "cat"})).key != half.key
    assert _plan(fracture=Fracture(0.5, {"dog": "house", "cat": "cat"})).key != half.key
    monkeypatch.setattr(pipeline_steps, "TRAINER_VERSION", pipeline_steps.TRAINER_VERSION + 1)
    assert _plan().key != base


# --- results: result_key ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    from vwbench.registry import TaskRegistry

    return TaskRegistry.from_dir(REPO_TASKS).get("sd->clip", "synth-coco")


def _result_key(base_task, **change):
    from vwbench.pipeline_steps import result_key

    args = {"words_key": "words-1", "transfer_name": "lstsq", "task": base_task,
            "evaluators": {"target": {"m.safetensors": "aaa"}, "judge": {"j.safetensors": "jjj"}},
            "dataset_hash": "manifest-1", "dtype": torch.float32}
    return result_key(**{**args, **change})


def test_result_key_is_deterministic(task) -> None:
    assert _result_key(task) == _result_key(task)


@pytest.mark.parametrize("what", ["words", "transfer", "target", "eval", "target_files", "judge_files", "dataset", "dtype"])
def test_every_evaluation_input_changes_the_result_key(task, what) -> None:
    if what == "words":
        change = {"words_key": "words-2"}
    elif what == "transfer":
        change = {"transfer_name": "ridge"}
    elif what == "target":
        target = task.target.model_copy(update={"metric": "map50"})
        change = {"task": task.model_copy(update={"target": target})}
    elif what == "eval":
        change = {"task": task.model_copy(update={"eval": task.eval.model_copy(update={"guidance_scale": 3.0})})}
    elif what == "target_files":
        change = {"evaluators": {"target": {"m.safetensors": "bbb"}, "judge": {"j.safetensors": "jjj"}}}
    elif what == "judge_files":
        change = {"evaluators": {"target": {"m.safetensors": "aaa"}, "judge": {"j.safetensors": "kkk"}}}
    elif what == "dataset":
        change = {"dataset_hash": "manifest-2"}
    else:
        change = {"dtype": torch.bfloat16}
    assert _result_key(task, **change) != _result_key(task)


# --- the settings reach the trainer and the evaluation ------------------------------------------


def test_train_plans_together_trains_with_the_runs_hyperparameters(tmp_path, monkeypatch) -> None:
    from vwbench import pipeline_steps
    from vwbench.training import TrainConfig, TrainedWords

    hp = Hyperparameters(trials=2, lr=3e-3, betas=(0.8, 0.95), eps=1e-6, batch_size=3, steps=5, n_vectors=3, seed=7)
    source, ckpt, split, _, _ = _plan_inputs(hp=hp)
    plan = pipeline_steps.plan_words(source, ckpt, split, hp)
    rows = {t[:-4]: VOCAB.matrix[i] for i, t in enumerate(VOCAB.tokens)}
    source.token_vectors = lambda words: torch.stack([rows[w] for w in words])
    split.concept_names = [c.name for c in split.concepts]
    split.train = []
    seen = {}

    def fake_train(model, data, init, word_concepts, config, **kwargs):
        seen.update(init=init.clone(), concepts=list(word_concepts), config=config, **kwargs)
        return TrainedWords(init.clone(), [0.0] * config.steps, torch.zeros(config.steps, init.shape[0]))

    monkeypatch.setattr(pipeline_steps, "train_words", fake_train)
    vectors, losses, facts = pipeline_steps.train_plan_words(source, split, hp, plan, [0, 1, 2, 3], NullReporter(), tmp_path / "s.trainstate")
    assert seen["config"] == TrainConfig(steps=5, lr=3e-3, betas=(0.8, 0.95), eps=1e-6, batch_size=3, seed=7)
    assert tuple(seen["init"].shape) == (4, 3, 2)  # n_vectors copies of each init word's row
    assert torch.equal(seen["init"][1], rows["puppy"].expand(3, 2))
    assert seen["concepts"] == [0, 0, 1, 1] and seen["word_keys"] == ["dog/0", "dog/1", "cat/0", "cat/1"]
    assert seen["ball"] is None and tuple(vectors.shape) == (4, 3, 2) and facts == {}


def test_evaluation_uses_the_runs_seed_and_eval_settings(task) -> None:
    from vwbench.pipeline_steps import evaluate_words

    seen = {}

    class Target:
        kind, family = "generation", "sd"

        def predict(self, mapped, word_concepts, heldout, ctx):
            seen.update(concepts=list(word_concepts), ctx=ctx)
            return []

    hp = Hyperparameters(trials=1, seed=9)
    ev = task.eval.model_copy(update={"generations_per_word": 3, "inference_steps": 7, "guidance_scale": 2.5, "batch_size": 5})
    split = SimpleNamespace(concept_names=["dog", "cat"], heldout=[])
    words = SimpleNamespace(concepts=["cat", "dog"])
    evaluate_words(Target(), "judge", torch.zeros(2, 1, 2), words, split, task.model_copy(update={"eval": ev}), hp, NullReporter())
    ctx = seen["ctx"]
    assert seen["concepts"] == [1, 0]
    assert (ctx.seed, ctx.judge, ctx.generations_per_word, ctx.inference_steps, ctx.batch_size) == (9, "judge", 3, 7, 5)
    assert ctx.options["guidance_scale"] == 2.5 and ctx.concepts == ["dog", "cat"]
