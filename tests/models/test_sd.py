"""The Stable Diffusion adapter on a tiny random SD in the real diffusers/transformers classes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vwbench.models  # noqa: F401  (torchvision shim before diffusers)
from vwbench.data.base import Annotation, Example
from vwbench.errors import CheckpointNotFound
from vwbench.models.base import EvalContext, TrainingData, Vocabulary
from vwbench.models.sd import SDPrepared, StableDiffusionAdapter, image_to_tensor
from vwbench.models.words import WordPrompt
from vwbench.predictions import LabelPredictions
from vwbench.zoo.tiny_sd import save_tiny_sd

CONCEPTS = ["dog", "cat", "cup"]
IMAGE_SIDE = 16  # tiny SD: latent 8 x VAE factor 2


@pytest.fixture(scope="module")
def sd_dirs(tmp_path_factory, vocab_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_sd")
    return {
        kind: save_tiny_sd(root / kind, vocab_dir, prediction_type=kind)
        for kind in ("v_prediction", "epsilon")
    }


@pytest.fixture(scope="module")
def sd(sd_dirs) -> StableDiffusionAdapter:
    return StableDiffusionAdapter.from_pretrained(sd_dirs["v_prediction"])


@pytest.fixture(scope="module")
def sd_eps(sd_dirs) -> StableDiffusionAdapter:
    return StableDiffusionAdapter.from_pretrained(sd_dirs["epsilon"])


def _example(i: int, concept: str) -> Example:
    colour = {"dog": (200, 40, 40), "cat": (40, 200, 40), "cup": (40, 40, 200)}[concept]

    def load() -> Image.Image:
        image = Image.new("RGB", (24, 20), colour)
        image.putpixel((i % 24, i % 20), (255, 255, 255))
        return image

    return Example(f"{concept}{i}", 24, 20, [Annotation((0.0, 0.0, 10.0, 10.0), concept)], loader=load)


@pytest.fixture(scope="module")
def training_data() -> TrainingData:
    examples = [_example(i, c) for c, n in (("dog", 3), ("cat", 2), ("cup", 1)) for i in range(n)]
    return TrainingData(examples, list(CONCEPTS))


@pytest.fixture(scope="module")
def prepared(sd, training_data) -> SDPrepared:
    return sd.prepare(training_data)


def _words(model: StableDiffusionAdapter, init: Sequence[str], n_vectors: int = 2) -> torch.Tensor:
    return model.token_vectors(init).unsqueeze(1).repeat(1, n_vectors, 1).contiguous()


def _hf_encode(model: StableDiffusionAdapter, text: str):
    ids = model.tokenizer(
        [text], padding="max_length", max_length=model.tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return ids, model.text_encoder(ids)


class HashJudge:
    """Test double for the generation judge: labels an image by a hash of its pixels."""

    def __init__(self) -> None:
        self.calls = 0

    def classify_images(self, images, class_names, template: str = "a photo of {}") -> list[str]:
        self.calls += 1
        digests = [int(hashlib.sha256(im.tobytes()).hexdigest(), 16) for im in images]
        return [class_names[d % len(class_names)] for d in digests]


# ---------------------------------------------------------------------- saving and loading


def test_save_load_round_trip(sd_dirs, vocab_dir, tmp_path):
    folder = sd_dirs["v_prediction"]
    for part in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
        assert (folder / part).is_dir()
    for part in ("text_encoder", "unet", "vae"):
        assert list((folder / part).glob("*.safetensors"))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]

    model = StableDiffusionAdapter.from_pretrained(folder)
    assert (model.family, model.kind) == ("sd", "generation")
    assert model.embedding_dim == 32 and model.image_size == IMAGE_SIDE
    assert model.prediction_type == "v_prediction"
    config = model.text_encoder.config
    tokenizer = model.tokenizer
    assert (config.bos_token_id, config.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert config.vocab_size == len(json.loads((vocab_dir / "vocab.json").read_text()))
    for module in (model.text_encoder, model.unet, model.vae):
        assert not module.training and not any(p.requires_grad for p in module.parameters())

    # The weights depend on the seed only.
    again = StableDiffusionAdapter.from_pretrained(save_tiny_sd(tmp_path / "again", vocab_dir))
    other = StableDiffusionAdapter.from_pretrained(save_tiny_sd(tmp_path / "other", vocab_dir, seed=1))
    for a, b in zip(model.unet.parameters(), again.unet.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(model.vocabulary().matrix, other.vocabulary().matrix)

    with pytest.raises(CheckpointNotFound, match="model_index.json"):
        StableDiffusionAdapter.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------------- vocabulary


def test_vocabulary_rows(sd, vocab_dir):
    vocab = sd.vocabulary()
    assert isinstance(vocab, Vocabulary)
    assert vocab.matrix.dtype == torch.float32 and vocab.matrix.device.type == "cpu"
    by_id = json.loads((vocab_dir / "vocab.json").read_text())
    expected = [t for t, _ in sorted(by_id.items(), key=lambda kv: kv[1]) if not t.startswith("<|")]
    # The pad token "!" is an ordinary row: only start/end of text are excluded.
    assert vocab.tokens == expected and "!" in vocab.tokens and "dog</w>" in vocab.tokens
    table = sd.text_encoder.get_input_embeddings().weight
    for token in ("dog</w>", "photo</w>", "!", "a"):
        assert torch.equal(vocab.rows([token])[0], table[by_id[token]])


def test_token_vectors(sd):
    vectors = sd.token_vectors(["dog", "cat"])
    assert vectors.shape == (2, 32) and vectors.dtype == torch.float32
    assert torch.equal(vectors, sd.vocabulary().rows(["dog</w>", "cat</w>"]))
    with pytest.raises(ValueError, match="dogcatcup"):
        sd.token_vectors(["dog", "dogcatcup"])


# ---------------------------------------------------------------------- text encoding


def test_text_states_match_hf_model(sd):
    ids, out = _hf_encode(sd, "a photo of dog")
    with torch.no_grad():
        hidden, eos = sd.encode_text_states(["a photo of dog"])
        word_hidden, word_eos = sd.encode_word_states(sd.token_vectors(["dog"]).unsqueeze(1))
        pooled = sd.encode_words(sd.token_vectors(["dog"]).unsqueeze(1))
    # Ordinary prompts are padded as the SD pipeline's tokenizer call pads them.
    assert int(eos[0]) == word_eos == int((ids[0] == sd.tokenizer.eos_token_id).nonzero()[0])
    torch.testing.assert_close(hidden, out.last_hidden_state, rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled, out.pooler_output, rtol=0, atol=1e-6)
    # Splicing the embedding of "dog" into the word slot gives the prompt with "dog" in it.
    torch.testing.assert_close(word_hidden, out.last_hidden_state, rtol=0, atol=1e-6)


def test_text_encoder_is_causal(sd):
    a = torch.stack([sd.token_vectors(["photo", "dog"])])
    b = torch.stack([sd.token_vectors(["photo", "cat"])])
    with torch.no_grad():
        ha, _ = sd.encode_word_states(a)
        hb, _ = sd.encode_word_states(b)
    second_slot = int(sd.word_prompt(2).word_positions[1])
    assert torch.equal(ha[:, :second_slot], hb[:, :second_slot])
    assert not torch.allclose(ha[:, second_slot:], hb[:, second_slot:])


def test_word_states_raise_no_transformers_deprecation(sd):
    """The causal mask is asked for under the cache argument's current name (no FutureWarning
    from transformers, whose old name goes in 5.40)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with torch.no_grad():
            sd.encode_word_states(torch.stack([sd.token_vectors(["photo", "dog"])]))


def test_loading_logs_no_accelerate_warning(sd_dirs):
    """Without accelerate, diffusers' default low_cpu_mem_usage would fall back with a warning on
    every load of the UNet and the VAE; the adapter asks for the fallback itself."""
    import logging

    from diffusers.utils import is_accelerate_available

    if is_accelerate_available():
        pytest.skip("accelerate is installed: diffusers' own default applies")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    try:
        StableDiffusionAdapter.from_pretrained(sd_dirs["v_prediction"])
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "accelerate" in r.getMessage()]


def test_pools_at_end_of_text_when_word_ids_exceed_eos(sd_dirs):
    model = StableDiffusionAdapter.from_pretrained(sd_dirs["v_prediction"])
    vectors = model.token_vectors(["dog"]).unsqueeze(1)
    with torch.no_grad():
        reference = model.encode_words(vectors)
    # Give the text encoder a row for a new token, as adding a word to the tokenizer would: its id
    # is above the end-of-text id, so argmax(input_ids) pooling would pick the word slot.
    new_id = len(model.tokenizer)
    assert new_id > model.tokenizer.eos_token_id
    model.text_encoder.resize_token_embeddings(new_id + 1)
    prompt = model.word_prompt(1)
    ids = prompt.input_ids.clone()
    ids[prompt.word_positions] = new_id
    model._word_prompts[1] = WordPrompt(ids, prompt.word_positions, prompt.eos_position)
    assert int(ids.argmax()) != prompt.eos_position
    with torch.no_grad():
        pooled = model.encode_words(vectors)
        hidden, _ = model.encode_word_states(vectors)
    torch.testing.assert_close(pooled, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(pooled, hidden[:, int(ids.argmax())])


# ---------------------------------------------------------------------- training


def test_prepare_caches_latents(sd, prepared, training_data):
    assert prepared.latents.shape == (6, 4, 8, 8) and prepared.latents.dtype == torch.float32
    assert [r.tolist() for r in prepared.concept_rows] == [[0, 1, 2], [3, 4], [5]]
    pixels = image_to_tensor(training_data.examples[0].load_image(), IMAGE_SIDE)
    assert pixels.shape == (3, IMAGE_SIDE, IMAGE_SIDE) and -1.0 <= pixels.min() and pixels.max() <= 1.0
    with torch.no_grad():
        mean = sd.vae.encode(pixels[None]).latent_dist.mean * sd.vae.config.scaling_factor
    torch.testing.assert_close(prepared.latents[:1], mean)


def test_loss_finite_for_both_prediction_types(sd, sd_eps, training_data, prepared):
    for model, data in ((sd, prepared), (sd_eps, sd_eps.prepare(training_data))):
        generator = torch.Generator().manual_seed(0)
        loss = model.loss(_words(model, CONCEPTS), [0, 1, 2], data, generator, batch_size=4)
        assert loss.shape == (3,) and loss.dtype == torch.float32 and torch.isfinite(loss).all()

    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 900])
    velocity = sd.noise_scheduler.get_velocity(latents, noise, t)
    torch.testing.assert_close(sd.training_target(latents, noise, t), velocity)
    assert torch.equal(sd_eps.training_target(latents, noise, t), noise)


def test_gradients_reach_only_the_words(sd, prepared):
    vectors = _words(sd, ["dog", "cat"]).requires_grad_(True)
    loss = sd.loss(vectors, [0, 1], prepared, torch.Generator().manual_seed(1), batch_size=4)
    (grad,) = torch.autograd.grad(loss[0], vectors, retain_graph=True)
    assert grad[0].abs().sum() > 0 and torch.equal(grad[1], torch.zeros_like(grad[1]))
    loss.sum().backward()
    assert vectors.grad is not None
    for module in (sd.text_encoder, sd.unet, sd.vae):
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())


def test_loss_reproducible_from_generator(sd, prepared):
    vectors = _words(sd, ["dog", "cup"])
    with torch.no_grad():
        first = sd.loss(vectors, [0, 2], prepared, torch.Generator().manual_seed(7))
        second = sd.loss(vectors, [0, 2], prepared, torch.Generator().manual_seed(7))
        other = sd.loss(vectors, [0, 2], prepared, torch.Generator().manual_seed(8))
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_adam_lowers_loss_on_a_fixed_batch(sd, prepared):
    vectors = _words(sd, ["cat"]).requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=0.05)

    def fixed_batch_loss() -> torch.Tensor:
        return sd.loss(vectors, [0], prepared, torch.Generator().manual_seed(3), batch_size=4)

    with torch.no_grad():
        before = fixed_batch_loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        fixed_batch_loss().sum().backward()
        optimizer.step()
    with torch.no_grad():
        assert fixed_batch_loss().item() < before


# ---------------------------------------------------------------------- generation


def test_generate_images(sd):
    vectors = _words(sd, ["dog", "cat"])
    images = sd.generate(vectors, n_per_word=3, steps=3, seed=0, batch_size=4)
    assert [len(w) for w in images] == [3, 3]
    assert all(isinstance(im, Image.Image) and im.size == (IMAGE_SIDE, IMAGE_SIDE) and im.mode == "RGB"
               for w in images for im in w)
    # A word's images depend on the seed only, not on batching or the other words.
    alone = sd.generate(vectors[1:], n_per_word=3, steps=3, seed=0, batch_size=1)
    for a, b in zip(images[1], alone[0]):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1
    other_seed = sd.generate(vectors[:1], n_per_word=1, steps=3, seed=1)
    assert other_seed[0][0].tobytes() != images[0][0].tobytes()
    unguided = sd.generate(vectors[:1], n_per_word=1, steps=2, seed=0, guidance_scale=1.0)
    assert unguided[0][0].size == (IMAGE_SIDE, IMAGE_SIDE)


def test_generate_matches_diffusers_pipeline(sd):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        scheduler=DDIMScheduler.from_config(sd.noise_scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    dog = sd.token_vectors(["dog"]).unsqueeze(1)
    ours = sd.generate(dog, n_per_word=2, steps=3, seed=4, guidance_scale=5.0)
    theirs = pipe(
        "a photo of dog", num_inference_steps=3, guidance_scale=5.0,
        latents=sd.initial_noise(2, 4), num_images_per_prompt=2, output_type="np",
    ).images
    for ours_image, their_image in zip(ours[0], theirs):
        expected = (their_image * 255).round().astype(int)
        assert np.abs(np.asarray(ours_image, dtype=int) - expected).max() <= 1


def test_predict_with_judge(sd):
    vectors = _words(sd, ["dog", "cup"])
    done: list[int] = []
    ctx = EvalContext(
        concepts=list(CONCEPTS), seed=5, judge=HashJudge(), generations_per_word=3, inference_steps=2,
        batch_size=4, progress=done.append, options={"guidance_scale": 3.0},
    )
    first = sd.predict(vectors, [0, 2], [], ctx)
    assert sum(done) == 6
    assert all(isinstance(p, LabelPredictions) for p in first)
    assert [p.target for p in first] == ["dog", "cup"]
    for p in first:
        assert len(p.predicted) == len(p.actual) == 3 and p.actual == [p.target] * 3
        assert set(p.predicted) <= set(CONCEPTS)
    assert sd.predict(vectors, [0, 2], [], ctx) == first

    ctx.judge = None
    with pytest.raises(ValueError, match="judge"):
        sd.predict(vectors, [0, 2], [], ctx)


def test_low_precision_weights_keep_fp32_losses(sd_dirs, training_data):
    model = StableDiffusionAdapter.from_pretrained(sd_dirs["v_prediction"], dtype=torch.bfloat16)
    assert next(model.unet.parameters()).dtype == torch.bfloat16
    vectors = _words(model, ["dog"]).requires_grad_(True)  # fp32 master copy
    generator = torch.Generator().manual_seed(0)
    loss = model.loss(vectors, [0], model.prepare(training_data), generator, batch_size=2)
    loss.sum().backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    assert vectors.grad is not None and vectors.grad.dtype == torch.float32


def test_compile_step_modules_compiles_the_unet_in_place(sd_dirs):
    """`--compile` wraps the UNet's forward with torch.compile (compiled lazily, on the first step:
    not run here, a CPU build needs a C++ compiler); the model stays the same object."""
    model = StableDiffusionAdapter.from_pretrained(sd_dirs["epsilon"])
    unet = model.unet
    assert model.compile_step_modules() == ["unet"]
    assert model.unet is unet and unet._compiled_call_impl is not None


def test_words_trained_in_several_passes_equal_one_pass(sd, training_data):
    """A GPU that cannot hold every word's UNet batch at once trains them a few per pass; their
    gradients add up into the same Adam step, so the words and the loss curve are the same."""
    from vwbench.training import TrainConfig, train_words

    init = _words(sd, ["dog", "cat", "cup"])
    config = TrainConfig(steps=3, lr=1e-2, seed=1)
    one = train_words(sd, training_data, init, [0, 1, 2], config, word_keys=["a", "b", "c"])
    split = train_words(sd, training_data, init, [0, 1, 2], replace(config, words_per_pass=2), word_keys=["a", "b", "c"])
    torch.testing.assert_close(split.vectors, one.vectors, rtol=0, atol=1e-6)
    assert split.loss_curve == pytest.approx(one.loss_curve, abs=1e-6)
    assert not torch.equal(one.vectors, init)  # it trained


def test_on_a_cpu_words_train_in_passes_of_bounded_latent_pixels(sd_dirs, training_data, monkeypatch):
    """On a CPU, SD's words go through the UNet a few per pass (``cpu_pass_latent_pixels``), with
    the same words and loss curve as one pass of all of them; other families keep one pass."""
    from vwbench.models.base import ConceptModel
    from vwbench.training import TrainConfig, train_words
    from vwbench.training.trainer import words_per_cpu_pass

    model = StableDiffusionAdapter.from_pretrained(sd_dirs["epsilon"])  # its own: the test counts its loss calls
    _, height, width = model._latent_shape()
    assert model.cpu_words_per_pass(8) == max(1, 64 * 16 * 16 // (8 * height * width))
    monkeypatch.setattr(model, "cpu_pass_latent_pixels", 2 * height * width * 2)  # 2 words of 2 latents
    assert words_per_cpu_pass(model, 5, batch_size=2) == 2 and words_per_cpu_pass(model, 1, batch_size=2) == 1
    assert ConceptModel.cpu_words_per_pass(model, 2) is None  # the default: every word in one pass

    calls = []
    loss = model.loss
    monkeypatch.setattr(model, "loss", lambda vectors, *args, **kw: calls.append(int(vectors.shape[0])) or loss(vectors, *args, **kw))
    init, keys = _words(model, ["dog", "cat", "cup"]), ["a", "b", "c"]
    config = TrainConfig(steps=2, lr=1e-2, seed=1, batch_size=2)
    default = train_words(model, training_data, init, [0, 1, 2], config, word_keys=keys)
    assert calls == [2, 1, 2, 1]
    one = train_words(model, training_data, init, [0, 1, 2], replace(config, words_per_pass=3), word_keys=keys)
    assert calls[4:] == [3, 3]
    torch.testing.assert_close(default.vectors, one.vectors, rtol=0, atol=1e-6)
    assert default.loss_curve == pytest.approx(one.loss_curve, abs=1e-6)
