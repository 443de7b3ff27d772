"""OpenClipAdapter on a tiny random open_clip CLIP (CPU, no network)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import vwbench.models  # noqa: F401  (torchvision shim before open_clip)
import open_clip  # noqa: E402
from open_clip.transformer import text_global_pool  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from vwbench.data.base import Annotation, Example  # noqa: E402
from vwbench.errors import CheckpointNotFound  # noqa: E402
from vwbench.models.base import EvalContext, TrainingData  # noqa: E402
from vwbench.models.clip import CheckpointError, OpenClipAdapter  # noqa: E402
from vwbench.models.words import build_word_prompt  # noqa: E402
from vwbench.predictions import LabelPredictions  # noqa: E402
from vwbench.zoo.tiny_clip import save_tiny_clip  # noqa: E402

CONCEPTS = ["red", "green", "blue"]
COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (50, 60, 210)}


def make_example(concept: str, index: int, size: int = 40) -> Example:
    """A coloured image with a per-index noise pattern, boxed as ``concept``."""
    g = torch.Generator().manual_seed(1000 * CONCEPTS.index(concept) + index)
    base = torch.tensor(COLOURS[concept], dtype=torch.float32).view(1, 1, 3)
    noise = torch.randint(-40, 41, (size, size, 3), generator=g).float()
    pixels = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels, mode="RGB")
    box = Annotation((0.0, 0.0, float(size), float(size)), concept)
    return Example(f"{concept}-{index}", size, size, [box], loader=lambda: image)


@pytest.fixture(scope="module")
def clip_dir(vocab_dir: Path, tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), vocab_dir)


@pytest.fixture(scope="module")
def adapter(clip_dir: Path) -> OpenClipAdapter:
    return OpenClipAdapter.from_pretrained(clip_dir)


@pytest.fixture(scope="module")
def train() -> TrainingData:
    return TrainingData([make_example(c, i) for c in CONCEPTS for i in range(4)], list(CONCEPTS))


@pytest.fixture(scope="module")
def heldout() -> list[Example]:
    return [make_example(c, 100 + i) for c in CONCEPTS for i in range(3)]


@pytest.fixture(scope="module")
def prepared(adapter: OpenClipAdapter, train: TrainingData):
    return adapter.prepare(train)


def init_vectors(adapter: OpenClipAdapter, words: list[str], n_vectors: int = 2) -> torch.Tensor:
    """``[W, n, d]``: each word's init-token embedding repeated, plus small deterministic noise."""
    rows = adapter.token_vectors(words)[:, None].repeat(1, n_vectors, 1)
    noise = torch.randn(rows.shape, generator=torch.Generator().manual_seed(0))
    return rows + 0.01 * noise


def plain_ids(adapter: OpenClipAdapter, texts: list[str]) -> torch.Tensor:
    return adapter.tokenizer(texts, context_length=adapter.special.context_length)


# ---- checkpoint -------------------------------------------------------------------------------


def test_tiny_clip_is_deterministic_per_seed(vocab_dir: Path, clip_dir: Path, tmp_path: Path) -> None:
    again = load_file(str(save_tiny_clip(tmp_path / "a", vocab_dir) / "open_clip_model.safetensors"))
    other = load_file(str(save_tiny_clip(tmp_path / "b", vocab_dir, seed=1) / "open_clip_model.safetensors"))
    first = load_file(str(clip_dir / "open_clip_model.safetensors"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["token_embedding.weight"], other["token_embedding.weight"])
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    assert config["model_cfg"]["text_cfg"]["pool_type"] == "eos"
    assert (clip_dir / "bpe_simple_vocab.txt.gz").read_bytes() == (vocab_dir / "bpe_simple_vocab.txt.gz").read_bytes()


def test_round_trip_matches_saved_model(adapter: OpenClipAdapter, clip_dir: Path) -> None:
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    reference = open_clip.CLIP(**config["model_cfg"]).eval()
    reference.load_state_dict(load_file(str(clip_dir / "open_clip_model.safetensors")))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = plain_ids(adapter, ["a photo of dog", "the cat"])
    with torch.no_grad():
        assert torch.allclose(adapter.model.encode_image(pixels), reference.encode_image(pixels))
        assert torch.allclose(adapter.model.encode_text(ids), reference.encode_text(ids))
    assert adapter.family == "clip" and adapter.kind == "classification"
    assert not adapter.model.training
    assert not any(p.requires_grad for p in adapter.model.parameters())


def test_bin_checkpoint_loads(adapter: OpenClipAdapter, clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(clip_dir / "open_clip_config.json", folder)
    shutil.copy(clip_dir / "bpe_simple_vocab.txt.gz", folder)
    torch.save(load_file(str(clip_dir / "open_clip_model.safetensors")), folder / "open_clip_pytorch_model.bin")
    loaded = OpenClipAdapter.from_pretrained(folder)
    ids = plain_ids(adapter, ["a photo of cup"])
    with torch.no_grad():
        assert torch.allclose(loaded.model.encode_text(ids), adapter.model.encode_text(ids))


class _Payload:
    """Unpickling this would call :func:`_touch`; a weights-only load must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


def _touch(path: str) -> None:
    Path(path).touch()


def test_bin_with_pickled_object_is_refused(clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(clip_dir / "open_clip_config.json", folder)
    marker = tmp_path / "unpickled"
    torch.save({"token_embedding.weight": _Payload(marker)}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        OpenClipAdapter.from_pretrained(folder)
    assert not marker.exists()


def test_missing_or_unsupported_checkpoints_are_reported(clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound, match="open_clip_config.json"):
        OpenClipAdapter.from_pretrained(tmp_path)
    shutil.copy(clip_dir / "open_clip_config.json", tmp_path)
    with pytest.raises(CheckpointNotFound, match="no weights file"):
        OpenClipAdapter.from_pretrained(tmp_path)
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path)
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_model_name"] = "roberta-base"
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="roberta-base"):
        OpenClipAdapter.from_pretrained(tmp_path)
    # a tower that pools elsewhere, or tokenizes with another tokenizer, would be scored wrongly
    for key, value, message in (("pool_type", "first", "pool_type 'first'"), ("hf_tokenizer_name", "some/tokenizer", "some/tokenizer")):
        changed = json.loads((clip_dir / "open_clip_config.json").read_text())
        changed["model_cfg"]["text_cfg"][key] = value
        (tmp_path / "open_clip_config.json").write_text(json.dumps(changed))
        with pytest.raises(CheckpointError, match=message):
            OpenClipAdapter.from_pretrained(tmp_path)


# ---- vocabulary -------------------------------------------------------------------------------


def test_vocabulary_rows(adapter: OpenClipAdapter, vocab_dir: Path) -> None:
    vocab = adapter.vocabulary()
    expected = json.loads((vocab_dir / "vocab.json").read_text())
    specials = {"<|startoftext|>", "<|endoftext|>"}
    assert vocab.tokens == [t for t, _ in sorted(expected.items(), key=lambda kv: kv[1]) if t not in specials]
    assert vocab.matrix.dtype == torch.float32 and vocab.matrix.device.type == "cpu"
    assert vocab.dim == adapter.embedding_dim
    weight = adapter.model.token_embedding.weight
    assert torch.equal(vocab.rows(["dog</w>"])[0], weight[expected["dog</w>"]])
    assert vocab.matrix.shape[0] == weight.shape[0] - 2


def test_token_vectors(adapter: OpenClipAdapter) -> None:
    rows = adapter.token_vectors(["dog", "cat"])
    assert rows.shape == (2, adapter.embedding_dim) and rows.dtype == torch.float32
    assert torch.equal(rows, adapter.vocabulary().rows(["dog</w>", "cat</w>"]))
    with pytest.raises(ValueError, match="xyzzy"):
        adapter.token_vectors(["dog", "xyzzy"])


# ---- text encoding and pooling ----------------------------------------------------------------


def test_plain_prompts_match_open_clip(adapter: OpenClipAdapter) -> None:
    texts = ["a photo of dog", "the red cup", "a photo of a photo of a cat"]
    with torch.no_grad():
        ours = adapter.encode_texts(texts)
        theirs = adapter.model.encode_text(plain_ids(adapter, texts))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_spliced_token_reproduces_plain_prompt(adapter: OpenClipAdapter) -> None:
    vectors = adapter.token_vectors(["dog", "cat"])[:, None]  # [2, 1, d]
    with torch.no_grad():
        ours = adapter.encode_words(vectors)
        theirs = adapter.model.encode_text(plain_ids(adapter, ["a photo of dog", "a photo of cat"]))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_pooling_stays_at_eos_when_new_id_is_highest(adapter: OpenClipAdapter) -> None:
    """A word stored as a new row (id above end-of-text) through open_clip's own encode_text:
    argmax pooling picks the word's position, eos pooling (and ours) the end-of-text token."""
    vector = torch.randn(1, 1, adapter.embedding_dim, generator=torch.Generator().manual_seed(3))
    model = copy.deepcopy(adapter.model)
    old = model.token_embedding.weight.data
    new_id = old.shape[0]
    assert new_id > adapter.special.eos
    model.token_embedding = torch.nn.Embedding.from_pretrained(torch.cat([old, vector[0]]))
    prompt = build_word_prompt(adapter.encode, adapter.special, n_vectors=1)
    ids = prompt.input_ids.clone()
    ids[prompt.word_positions] = new_id
    ids = ids[None]
    assert int(ids.argmax()) == int(prompt.word_positions[0]) != prompt.eos_position

    with torch.no_grad():
        ours = adapter.encode_words(vector)
        model.text_pool_type = "eos"
        at_eos = model.encode_text(ids)
        model.text_pool_type = "argmax"
        at_argmax = model.encode_text(ids)
    assert torch.allclose(ours, at_eos, atol=1e-6)
    assert not torch.allclose(ours, at_argmax, atol=1e-3)
    hidden = torch.randn(1, ids.shape[1], 4)
    assert torch.equal(text_global_pool(hidden, ids, "argmax"), hidden[:, int(prompt.word_positions[0])])


# ---- training loss ----------------------------------------------------------------------------


def test_prepare_indexes_concepts(prepared, train: TrainingData) -> None:
    assert prepared.features.shape == (12, 32)
    assert torch.allclose(prepared.features.norm(dim=-1), torch.ones(12), atol=1e-5)
    for c in range(len(CONCEPTS)):
        assert prepared.positives[c].tolist() == train.indices_of(c)
        assert sorted(prepared.positives[c].tolist() + prepared.negatives[c].tolist()) == list(range(12))


def test_loss_shape_finite_and_seeded(adapter: OpenClipAdapter, prepared) -> None:
    vectors = init_vectors(adapter, ["red", "blue", "cup"])
    losses = [
        adapter.loss(vectors, [0, 2, 1], prepared, torch.Generator().manual_seed(7), batch_size=4)
        for _ in range(2)
    ]
    assert losses[0].shape == (3,) and losses[0].dtype == torch.float32
    assert torch.isfinite(losses[0]).all() and (losses[0].abs() <= 2).all()
    assert torch.equal(losses[0], losses[1])
    # more samples than a concept has images: drawn with replacement
    big = adapter.loss(vectors, [0, 2, 1], prepared, torch.Generator().manual_seed(7), batch_size=16)
    assert torch.isfinite(big).all()


def test_gradients_reach_only_each_words_vectors(adapter: OpenClipAdapter, prepared) -> None:
    vectors = init_vectors(adapter, ["red", "green"]).requires_grad_(True)
    loss = adapter.loss(vectors, [0, 1], prepared, torch.Generator().manual_seed(0), batch_size=4)
    (grad,) = torch.autograd.grad(loss[0], vectors, retain_graph=True)
    assert grad[0].abs().sum() > 0
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))
    loss.sum().backward()
    assert vectors.grad is not None and torch.isfinite(vectors.grad).all()
    assert all(p.grad is None for p in adapter.model.parameters())


def test_adam_steps_lower_the_loss(adapter: OpenClipAdapter, prepared) -> None:
    vectors = init_vectors(adapter, ["cup"]).requires_grad_(True)

    def evaluate() -> float:
        with torch.no_grad():
            return float(adapter.loss(vectors, [1], prepared, torch.Generator().manual_seed(1), batch_size=8)[0])

    before = evaluate()
    optimizer = torch.optim.Adam([vectors], lr=0.05)
    generator = torch.Generator().manual_seed(2)
    for _ in range(8):
        optimizer.zero_grad()
        adapter.loss(vectors, [1], prepared, generator, batch_size=8).sum().backward()
        optimizer.step()
    assert evaluate() < before - 0.05


# ---- evaluation -------------------------------------------------------------------------------


def test_predict_labels_every_heldout_image(adapter: OpenClipAdapter, heldout: list[Example]) -> None:
    vectors = init_vectors(adapter, ["red", "blue"])
    done: list[int] = []
    ctx = EvalContext(concepts=list(CONCEPTS), batch_size=4, progress=done.append)
    preds = adapter.predict(vectors, [0, 2], heldout, ctx)
    assert [type(p) for p in preds] == [LabelPredictions, LabelPredictions]
    assert [p.target for p in preds] == ["red", "blue"]
    for p in preds:
        assert len(p.predicted) == len(p.actual) == len(heldout)
        assert p.actual == [e.concept for e in heldout]
        assert set(p.predicted) <= set(CONCEPTS)
    assert done == [4, 4, 1]  # held-out images encoded, in batches of ctx.batch_size
    again = adapter.predict(vectors, [0, 2], heldout, EvalContext(concepts=list(CONCEPTS)))
    assert [p.predicted for p in again] == [p.predicted for p in preds]


def test_init_word_predicts_like_zero_shot(adapter: OpenClipAdapter, heldout: list[Example]) -> None:
    """A word equal to its concept name's token is the zero-shot classifier itself."""
    vectors = adapter.token_vectors(["green"])[:, None]
    (pred,) = adapter.predict(vectors, [1], heldout, EvalContext(concepts=list(CONCEPTS)))
    zero_shot = adapter.classify_images([e.load_image() for e in heldout], CONCEPTS)
    assert pred.predicted == zero_shot


def test_classify_images(adapter: OpenClipAdapter, heldout: list[Example]) -> None:
    images = [e.load_image() for e in heldout]
    names = ["dog", "cat", "cup"]
    labels = adapter.classify_images(images, names, template="the {}")
    assert len(labels) == len(images) and set(labels) <= set(names)
    assert adapter.classify_images(images, names, template="the {}") == labels
    # each image gets the class whose templated text (through open_clip's own encode_text) is nearest
    with torch.no_grad():
        texts = torch.nn.functional.normalize(adapter.model.encode_text(plain_ids(adapter, [f"the {n}" for n in names])), dim=-1)
        nearest = (adapter.encode_images(images) @ texts.T).argmax(dim=1).tolist()
    assert labels == [names[i] for i in nearest]
    assert adapter.classify_images(images, names) != labels  # the template is used: the default one labels these otherwise
    assert adapter.classify_images(images, ["dog"]) == ["dog"] * len(images)


def test_low_precision_weights_keep_fp32_losses(clip_dir: Path, train: TrainingData) -> None:
    """open_clip's mixed precision (fp16/bf16 matmul weights); vectors and losses stay fp32."""
    low = OpenClipAdapter.from_pretrained(clip_dir, dtype=torch.bfloat16)
    assert low.model.text_projection.dtype == torch.bfloat16
    vectors = init_vectors(low, ["red"]).requires_grad_(True)
    loss = low.loss(vectors, [0], low.prepare(train), torch.Generator().manual_seed(0), batch_size=4)
    loss.sum().backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    assert vectors.grad is not None and vectors.grad.dtype == torch.float32


def test_half_precision_pixels_go_in_at_the_layers_dtype(clip_dir: Path):
    """open_clip in half precision keeps the class and position embeddings in float32, so the image
    tower's first parameter does not say what pixels it takes (the naive bench loop once read it
    there and failed on a GPU)."""
    half = OpenClipAdapter.from_pretrained(clip_dir, dtype=torch.float16)
    assert half.input_dtype == torch.float16
    assert next(half.model.visual.parameters()).dtype == torch.float32
    features = half.encode_images([make_example("red", 0).load_image()])
    assert features.dtype == torch.float32 and torch.isfinite(features).all()


def test_cached_prompt_prefix_gives_the_whole_prompts_features_and_gradients(adapter: OpenClipAdapter) -> None:
    """encode_words computes "a photo of" once and runs only the word's positions on; the
    features and the words' gradients equal those of the whole prompt through the tower."""
    from vwbench.models import prompt_prefix
    from vwbench.models.words import splice

    assert prompt_prefix.supports(adapter.text.transformer)
    vectors = torch.randn(5, 3, adapter.embedding_dim, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    prompt = adapter.word_prompt(3)
    ids = prompt.input_ids.expand(5, -1)
    whole = adapter._text_from_embeds(splice(adapter.text.token_embedding(ids), prompt.word_positions, vectors), prompt.eos_position)
    cached = adapter.encode_words(vectors)
    assert torch.allclose(cached, whole, atol=1e-5)
    weights = torch.randn(whole.shape, generator=torch.Generator().manual_seed(5))
    (grad_whole,) = torch.autograd.grad((whole * weights).sum(), vectors)
    (grad_cached,) = torch.autograd.grad((cached * weights).sum(), vectors)
    assert torch.allclose(grad_cached, grad_whole, atol=1e-5)
    assert adapter.encode_words(vectors).equal(cached), "the cached prefix is reused as it was"


def test_towers_the_prefix_path_does_not_reproduce_run_whole(clip_dir: Path) -> None:
    from open_clip.transformer import CustomResidualAttentionBlock

    from vwbench.models import prompt_prefix

    adapter = OpenClipAdapter.from_pretrained(clip_dir)
    vectors = adapter.token_vectors(["dog"])[:, None]
    with torch.no_grad():
        before = adapter.encode_words(vectors)
    block = adapter.text.transformer.resblocks[0]
    custom = CustomResidualAttentionBlock(block.ln_1.normalized_shape[0], block.attn.num_heads)
    adapter.text.transformer.resblocks[0] = custom
    assert not prompt_prefix.supports(adapter.text.transformer)
    with torch.no_grad():
        after = adapter.encode_words(vectors)
        whole = adapter.model.encode_text(plain_ids(adapter, ["a photo of dog"]))
    assert torch.allclose(after, whole, atol=1e-6) and not torch.allclose(after, before, atol=1e-3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["model_cfg"].pop("embed_dim"), "open_clip cannot build this config (TypeError: "),
        (lambda c: c["model_cfg"].update(embed_dim="abc"), "open_clip cannot build this config (TypeError: "),
        (lambda c: c["model_cfg"].update(text_cfg=None), "not an open_clip config (model_cfg.text_cfg is not a mapping)"),
    ],
)
def test_a_broken_config_is_a_one_line_checkpoint_error(clip_dir: Path, tmp_path: Path, edit, message: str) -> None:
    """A config field missing or of the wrong type: open_clip's TypeError or AttributeError while
    building becomes one line naming the config (it was a traceback)."""
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path)
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    edit(config)
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        OpenClipAdapter.from_pretrained(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'open_clip_config.json'}: ")


def test_a_config_nested_too_deep_is_a_checkpoint_error(clip_dir: Path, tmp_path: Path) -> None:
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path)
    (tmp_path / "open_clip_config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="not an open_clip config"):
        OpenClipAdapter.from_pretrained(tmp_path)


def test_weights_of_another_config_name_the_first_mismatch_in_one_line(clip_dir: Path, tmp_path: Path) -> None:
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path)
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["width"] = config["model_cfg"]["text_cfg"]["width"] * 2
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        OpenClipAdapter.from_pretrained(tmp_path)
    text = str(info.value)
    assert "\n" not in text and "does not match open_clip_config.json: size mismatch for " in text
    assert re.search(r"\(and \d+ more\)$", text), text
