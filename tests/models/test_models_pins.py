"""Pins on the model adapters' edges, on hand-made token ids and the tiny models: prompt building at
the context limit and with a suffix, the BPE vocabulary writer's word rules, the shared Vocabulary
and sampling helpers, how open_clip checkpoints in other common layouts load, OWLv2's default
detections and size check, and SD's training targets, image preprocessing, start noise and the
samples kept for the leaderboard."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vwbench.models  # noqa: F401  (the torchvision shim before open_clip, transformers and diffusers)
from safetensors.torch import load_file
from tests.conftest import TEST_WORDS
from tests.models.test_clip import _Payload, adapter, clip_dir, make_example  # noqa: F401  (fixtures)
from tests.models.test_owlv2 import IMAGE_SIZE, checkpoint  # noqa: F401  (fixtures)
from tests.models.test_owlv2 import make_example as box_example
from tests.models.test_sd import HashJudge
from vwbench.data.base import Annotation, Example
from vwbench.errors import DataError, UserError
from vwbench.models.base import EvalContext, TrainingData, Vocabulary, per_word_generators, sample_from_pool
from vwbench.models.clip import CheckpointError, OpenClipAdapter
from vwbench.models.owlv2 import Owlv2Adapter
from vwbench.models.sd import StableDiffusionAdapter, image_to_tensor
from vwbench.models.vocab_files import _segment, build_merges
from vwbench.models.words import SpecialIds, build_word_prompt
from vwbench.zoo.tiny_sd import save_tiny_sd

# --- words.py: token ids of a word prompt ---------------------------------------------------------

IDS = {"a": 10, "photo": 11, "of": 12, "in": 13, "the": 14, "snow": 15}
SPECIAL = SpecialIds(bos=1, eos=2, pad=0, context_length=8)


def fake_encode(text: str) -> list[int]:
    return [IDS[w] for w in text.split()]


def test_a_word_prompt_may_fill_the_context_exactly() -> None:
    # start + "a photo of" + 3 slots + end = 8 = the context
    prompt = build_word_prompt(fake_encode, SPECIAL, 3)
    assert prompt.input_ids.tolist() == [1, 10, 11, 12, 1, 1, 1, 2]
    assert prompt.word_positions.tolist() == [4, 5, 6] and prompt.eos_position == 7
    with pytest.raises(ValueError, match="prompt of 9 tokens exceeds context length 8"):
        build_word_prompt(fake_encode, SPECIAL, 4)


def test_a_template_suffix_follows_the_word_slots_and_the_rest_is_padding() -> None:
    special = SpecialIds(bos=1, eos=2, pad=0, context_length=12)
    prompt = build_word_prompt(fake_encode, special, 2, template="a {} in the snow")
    assert prompt.input_ids.tolist() == [1, 10, 1, 1, 13, 14, 15, 2, 0, 0, 0, 0]
    assert prompt.word_positions.tolist() == [2, 3] and prompt.eos_position == 7


def test_the_clip_adapter_says_which_word_sizes_do_not_fit(adapter) -> None:  # noqa: F811
    length = adapter.special.context_length
    adapter.check_word_fits(length - 5)  # start, "a photo of", the word, end: fits exactly
    with pytest.raises(UserError, match=rf"^clip: words of {length - 4} vectors do not fit its prompt \(prompt of {length + 1} tokens exceeds context length {length}\); lower n_vectors"):
        adapter.check_word_fits(length - 4)


# --- vocab_files.py ------------------------------------------------------------------------------


def test_every_listed_word_is_one_token_two_letter_ones_too() -> None:
    merges = build_merges(TEST_WORDS)
    ranks = {pair: i for i, pair in enumerate(merges)}
    assert ("o", "f</w>") in ranks  # "of": two letters, one merge
    for word in TEST_WORDS:
        assert _segment(word, ranks) == [word + "</w>"], word


def test_vocabulary_words_must_be_lowercase_ascii_letters() -> None:
    for bad in ("Dog", "dog2", "café", "hot-dog"):
        with pytest.raises(ValueError, match="only lowercase ascii letters"):
            build_merges(["cat", bad])


# --- base.py -------------------------------------------------------------------------------------


def test_vocabulary_needs_one_row_per_token() -> None:
    with pytest.raises(ValueError, match=r"vocabulary matrix \(3, 4\) does not match 2 tokens"):
        Vocabulary(["a</w>", "b</w>"], torch.zeros(3, 4))
    with pytest.raises(ValueError, match="does not match"):
        Vocabulary(["a</w>"], torch.zeros(4))


def test_vocabulary_hashes() -> None:
    one = Vocabulary(["ab</w>", "c</w>"], torch.zeros(2, 3))
    assert one.token_hash() == hashlib.sha256(b"ab</w>\nc</w>").hexdigest()
    assert Vocabulary(["ab</w>c</w>"], torch.zeros(1, 3)).token_hash() != one.token_hash()  # token boundaries count
    other_values = Vocabulary(["ab</w>", "c</w>"], torch.ones(2, 3))
    assert other_values.token_hash() == one.token_hash() and other_values.hash() != one.hash()
    assert one.hash() == Vocabulary(["ab</w>", "c</w>"], torch.zeros(2, 3, dtype=torch.float64)).hash()


def test_one_generator_per_word_or_one_shared() -> None:
    g = torch.Generator()
    assert per_word_generators(g, 3) == [g, g, g]
    with pytest.raises(ValueError, match="3 words but 2 random generators"):
        per_word_generators([g, torch.Generator()], 3)


def test_sampling_from_an_empty_pool_names_what_has_no_images() -> None:
    with pytest.raises(ValueError, match="^concept 'dog' has no training images$"):
        sample_from_pool(torch.empty(0, dtype=torch.long), 4, torch.Generator(), "concept 'dog'")


# --- clip.py: checkpoints in other layouts, bad input ----------------------------------------------


def checkpoint_folder(clip_dir: Path, folder: Path, state=None, config_edit=None) -> Path:  # noqa: F811
    """A copy of the tiny CLIP folder; ``state`` (a state dict, maybe wrapped) saved as its .bin."""
    folder.mkdir()
    shutil.copy(clip_dir / "bpe_simple_vocab.txt.gz", folder)
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    if config_edit:
        config_edit(config["model_cfg"]["text_cfg"])
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    if state is None:
        shutil.copy(clip_dir / "open_clip_model.safetensors", folder)
    else:
        torch.save(state, folder / "open_clip_pytorch_model.bin")
    return folder


def same_text_features(a: OpenClipAdapter, b: OpenClipAdapter) -> bool:
    with torch.no_grad():
        return torch.allclose(a.encode_texts(["a photo of dog"]), b.encode_texts(["a photo of dog"]), atol=1e-6)


def test_argmax_and_unset_pool_types_load(adapter, clip_dir, tmp_path) -> None:  # noqa: F811
    """OpenAI-style configs pool at argmax (or say nothing): vwbench pools at end-of-text anyway."""
    set_argmax = checkpoint_folder(clip_dir, tmp_path / "argmax", config_edit=lambda c: c.update(pool_type="argmax"))
    unset = checkpoint_folder(clip_dir, tmp_path / "unset", config_edit=lambda c: c.pop("pool_type", None))
    for folder in (set_argmax, unset):
        assert same_text_features(OpenClipAdapter.from_pretrained(folder), adapter)


@pytest.mark.parametrize("layout", ["module_prefix", "state_dict_wrapper", "logit_scale_1d"])
def test_common_bin_layouts_load(adapter, clip_dir, tmp_path, layout) -> None:  # noqa: F811
    state = load_file(str(clip_dir / "open_clip_model.safetensors"))
    if layout == "module_prefix":  # saved from DataParallel / DDP
        state = {f"module.{k}": v for k, v in state.items()}
    elif layout == "state_dict_wrapper":  # a training checkpoint
        state = {"state_dict": state, "epoch": 3}
    else:  # OpenAI checkpoints keep logit_scale as [1]
        state["logit_scale"] = state["logit_scale"].reshape(1)
    loaded = OpenClipAdapter.from_pretrained(checkpoint_folder(clip_dir, tmp_path / layout, state))
    assert same_text_features(loaded, adapter)
    assert torch.equal(loaded.model.logit_scale, adapter.model.logit_scale)


def test_a_non_tensor_entry_is_a_checkpoint_error_naming_it(clip_dir, tmp_path) -> None:  # noqa: F811
    state = load_file(str(clip_dir / "open_clip_model.safetensors"))
    state["logit_scale"] = 3
    with pytest.raises(CheckpointError, match="entry 'logit_scale' is a int, not a tensor"):
        OpenClipAdapter.from_pretrained(checkpoint_folder(clip_dir, tmp_path / "int", state))


def test_a_pickled_object_is_refused_naming_the_refused_global(clip_dir, tmp_path) -> None:  # noqa: F811
    folder = checkpoint_folder(clip_dir, tmp_path / "evil", {"token_embedding.weight": _Payload(tmp_path / "unpickled")})
    with pytest.raises(CheckpointError) as info:
        OpenClipAdapter.from_pretrained(folder)
    message = str(info.value)
    assert "torch.load with weights_only=True failed: " in message
    assert "Unsupported global: GLOBAL tests.models.test_clip._touch" in message  # the line that names it, not torch's first
    assert "\n" not in message and not (tmp_path / "unpickled").exists()


def test_clip_bad_calls_are_value_errors(adapter) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="at least one class name"):
        adapter.classify_images([make_example("red", 0).load_image()], [])
    with pytest.raises(ValueError, match=rf"expected vectors \[W, n, {adapter.embedding_dim}\], got \(2, {adapter.embedding_dim + 1}\)"):
        adapter.encode_words(torch.zeros(2, adapter.embedding_dim + 1))
    with pytest.raises(ValueError, match="expected vectors"):
        adapter.encode_words(torch.zeros(1, 2, adapter.embedding_dim - 1))


def test_clip_positives_are_the_concepts_own_images_not_name_prefixes(adapter) -> None:  # noqa: F811
    """Concept "red" must not take the images of concept "reddish" as its positives."""
    def relabel(example: Example, concept: str) -> Example:
        return Example(example.image_id, example.width, example.height, [Annotation((0.0, 0.0, 40.0, 40.0), concept)], loader=example.loader)

    examples = [relabel(make_example("red", i), c) for i, c in enumerate(["red", "reddish", "red", "reddish", "green"])]
    prepared = adapter.prepare(TrainingData(examples, ["red", "reddish", "green"]))
    assert [p.tolist() for p in prepared.positives] == [[0, 2], [1, 3], [4]]
    assert [n.tolist() for n in prepared.negatives] == [[1, 3, 4], [0, 2, 4], [0, 1, 2, 3]]


# --- owlv2.py --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def owl(checkpoint) -> Owlv2Adapter:  # noqa: F811
    return Owlv2Adapter.from_pretrained(checkpoint)


def test_owlv2_keeps_up_to_100_detections_per_image_by_default(owl) -> None:
    example = box_example(64, 64, (8, 8, 30, 20), "dog")
    n_regions = (IMAGE_SIZE // 16) ** 2  # 16 < 100: all of them
    (pred,) = owl.predict(owl.token_vectors(["dog"])[:, None], [0], [example], EvalContext(concepts=["dog", "cat"]))
    assert pred.boxes[0].shape == (n_regions, 4) and pred.scores[0].shape == (n_regions,)


def test_owlv2_refuses_an_image_whose_size_is_not_its_annotations(owl) -> None:
    example = box_example(64, 48, (8, 8, 30, 20), "dog")
    wrong = Example(example.image_id, 64, 64, example.annotations, loader=example.loader)
    with pytest.raises(DataError, match=f"image {example.image_id} is 64x48 but its annotations say 64x64"):
        owl.image_features([wrong])


# --- sd.py -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd(tmp_path_factory, vocab_dir) -> StableDiffusionAdapter:
    return StableDiffusionAdapter.from_pretrained(save_tiny_sd(tmp_path_factory.mktemp("sd_pins"), vocab_dir, prediction_type="epsilon"))


def with_prediction_type(sd: StableDiffusionAdapter, kind: str) -> StableDiffusionAdapter:
    other = copy.copy(sd)
    other.noise_scheduler = type(sd.noise_scheduler).from_config(sd.noise_scheduler.config, prediction_type=kind)
    return other


def test_sd_training_targets_of_sample_and_unknown_prediction_types(sd) -> None:
    latents, noise, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    assert torch.equal(with_prediction_type(sd, "sample").training_target(latents, noise, t), latents)
    with pytest.raises(ValueError, match="unsupported prediction_type 'flow'"):
        with_prediction_type(sd, "flow").training_target(latents, noise, t)


def test_sd_image_preprocessing_resizes_the_short_side_and_crops_the_centre() -> None:
    image = Image.new("RGB", (30, 20))
    for x in range(30):
        for y in range(20):
            image.putpixel((x, y), (0, 0, 0) if x < 10 else (255, 255, 255) if x < 20 else (255, 0, 0))
    tensor = image_to_tensor(image, 10)
    expected = np.asarray(image.resize((15, 10), Image.Resampling.BICUBIC).crop((2, 0, 12, 10)), dtype=np.float32) / 127.5 - 1.0
    assert tensor.shape == (3, 10, 10)
    torch.testing.assert_close(tensor, torch.from_numpy(expected).permute(2, 0, 1))
    unscaled = image_to_tensor(image.crop((10, 0, 30, 20)), 20)  # already 20 px high: no resize, crop x 0..20
    assert unscaled[:, :, :10].eq(1.0).all()  # white: +1
    assert unscaled[0, :, 10:].eq(1.0).all() and unscaled[1:, :, 10:].eq(-1.0).all()  # red: (+1, -1, -1)


def test_sd_start_noise_is_the_cpu_draw_of_the_seed(sd) -> None:
    expected = torch.randn((3, *sd._latent_shape()), generator=torch.Generator("cpu").manual_seed(5))
    assert torch.equal(sd.initial_noise(3, 5), expected)


def test_sd_keeps_one_sample_per_concept_the_first_words_first_image(sd) -> None:
    vectors = sd.token_vectors(["dog", "cat", "dog"]).unsqueeze(1)
    samples: dict[str, Image.Image] = {}
    ctx = EvalContext(concepts=["dog", "cat"], judge=HashJudge(), generations_per_word=2, inference_steps=1, options={"samples": samples})
    sd.predict(vectors, [0, 1, 0], [], ctx)
    images = sd.generate(vectors, 2, 1, 0)
    assert list(samples) == ["dog", "cat"]
    assert samples["dog"].tobytes() == images[0][0].tobytes() and samples["cat"].tobytes() == images[1][0].tobytes()


def test_sd_on_a_cpu_trains_at_least_one_word_per_pass(sd) -> None:
    assert sd.cpu_words_per_pass(10**6) == 1
