"""OWLv2 adapter on a tiny random-config checkpoint: text side, image side, loss, predictions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import vwbench.models  # noqa: F401  (installs the torchvision shim before transformers' OWLv2)
from vwbench.data.base import Annotation, Example
from vwbench.models.base import EvalContext, TrainingData
from vwbench.models.owlv2 import (
    Owlv2Adapter,
    RegionFeatures,
    cxcywh_to_xyxy,
    image_key,
    padded_to_pixels,
    pixels_to_padded,
    select_target_region,
)
from vwbench.predictions import BoxPredictions
from vwbench.zoo.tiny_owlv2 import save_tiny_owlv2

CONCEPTS = ["dog", "cat"]
IMAGE_SIZE = 64
_ids = itertools.count()


def make_example(width: int, height: int, box: tuple[float, float, float, float], category: str,
                 color: tuple[int, int, int] = (200, 40, 40), extra: list[Annotation] | None = None) -> Example:
    """A gray image with one filled rectangle at ``box`` (COCO xywh) labelled ``category``."""
    image = Image.new("RGB", (width, height), (90, 90, 90))
    x, y, w, h = box
    ImageDraw.Draw(image).rectangle([x, y, x + w - 1, y + h - 1], fill=color)
    annotations = [Annotation(box, category)] + (extra or [])
    return Example(f"img{next(_ids)}", width, height, annotations, loader=lambda: image)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, vocab_dir: Path) -> Path:
    return save_tiny_owlv2(tmp_path_factory.mktemp("tiny_owlv2"), vocab_dir, seed=0, image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def adapter(checkpoint: Path) -> Owlv2Adapter:
    return Owlv2Adapter.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def train_examples() -> list[Example]:
    return [
        make_example(64, 64, (8, 8, 30, 20), "dog"),
        make_example(80, 48, (40, 10, 30, 30), "dog", color=(180, 60, 20)),
        make_example(48, 64, (4, 20, 30, 40), "dog", color=(220, 90, 30)),
        make_example(64, 64, (5, 30, 20, 20), "cat", color=(40, 40, 200),
                     extra=[Annotation((40, 2, 10, 10), "dog")]),
        make_example(64, 40, (30, 5, 30, 30), "cat", color=(20, 90, 220)),
    ]


@pytest.fixture(scope="module")
def prepared(adapter: Owlv2Adapter, train_examples: list[Example]):
    return adapter.prepare(TrainingData(train_examples, CONCEPTS))


def word_vectors(adapter: Owlv2Adapter, words: list[str], n_vectors: int = 2) -> torch.Tensor:
    return adapter.token_vectors(words)[:, None].repeat(1, n_vectors, 1).clone()


# --- loading, vocabulary ---


def test_checkpoint_layout_and_round_trip(checkpoint: Path, adapter: Owlv2Adapter) -> None:
    from transformers import Owlv2ForObjectDetection

    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                 "vocab.json", "merges.txt"):
        assert (checkpoint / name).is_file(), name
    assert adapter.family == "owlv2" and adapter.kind == "detection"
    assert adapter.embedding_dim == 32 and adapter.image_size == IMAGE_SIZE
    assert not adapter.model.training
    assert not any(p.requires_grad for p in adapter.model.parameters())
    reference = Owlv2ForObjectDetection.from_pretrained(checkpoint)
    ours = adapter.model.state_dict()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours[name], tensor), name
    text = adapter.model.config.text_config
    assert (text.bos_token_id, text.eos_token_id) == (adapter.tokenizer.bos_token_id, adapter.tokenizer.eos_token_id)
    assert text.vocab_size == len(adapter.tokenizer)
    assert text.initializer_range == 0.02 and adapter.model.config.vision_config.initializer_range == 0.02


def test_same_seed_same_weights(tmp_path: Path, vocab_dir: Path, checkpoint: Path) -> None:
    from safetensors.torch import load_file

    again = load_file(save_tiny_owlv2(tmp_path / "a", vocab_dir, seed=0) / "model.safetensors")
    first = load_file(checkpoint / "model.safetensors")
    assert all(torch.equal(again[k], first[k]) for k in first)


def test_loading_draws_no_weight_bar_and_keeps_the_setting(checkpoint: Path, capsys) -> None:
    """transformers' "Loading weights" bar is off during the adapter's load and on again after."""
    from transformers.utils import logging as transformers_logging

    if not transformers_logging.is_progress_bar_enabled():
        pytest.skip("transformers' progress bars are off in this environment")
    Owlv2Adapter.from_pretrained(checkpoint)
    assert "Loading weights" not in capsys.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        Owlv2Adapter.from_pretrained(checkpoint)
        assert not transformers_logging.is_progress_bar_enabled()  # a user's "off" stays off
    finally:
        transformers_logging.enable_progress_bar()


def test_missing_checkpoint(tmp_path: Path) -> None:
    from vwbench.errors import CheckpointNotFound

    with pytest.raises(CheckpointNotFound):
        Owlv2Adapter.from_pretrained(tmp_path / "nowhere")


def test_vocabulary_rows_match_embedding_table(adapter: Owlv2Adapter) -> None:
    vocab = adapter.vocabulary()
    table = adapter.token_embedding.weight
    assert vocab.matrix.dtype == torch.float32 and vocab.matrix.device.type == "cpu"
    assert "<|startoftext|>" not in vocab.tokens and "<|endoftext|>" not in vocab.tokens
    assert len(vocab.tokens) == len(adapter.tokenizer) - 2
    assert vocab.dim == adapter.embedding_dim
    ids = adapter.tokenizer.convert_tokens_to_ids(vocab.tokens)
    assert torch.equal(vocab.matrix, table[torch.tensor(ids)].float())
    assert torch.equal(vocab.rows(["dog</w>"])[0], table[adapter.tokenizer.convert_tokens_to_ids("dog</w>")])


def test_token_vectors(adapter: Owlv2Adapter) -> None:
    vectors = adapter.token_vectors(["dog", "cat", "photo"])
    assert vectors.shape == (3, adapter.embedding_dim) and vectors.dtype == torch.float32
    assert torch.equal(vectors, adapter.vocabulary().rows(["dog</w>", "cat</w>", "photo</w>"]))
    with pytest.raises(ValueError, match="dogcat"):
        adapter.token_vectors(["dog", "dogcat"])


# --- text side ---


def test_query_embedding_matches_hf_text_features(adapter: Owlv2Adapter) -> None:
    texts = ["a photo of dog", "a photo of the cat"]
    ours = adapter.encode_texts(texts)
    ids = torch.stack([
        torch.tensor([adapter.special.bos] + adapter._encode(t) + [adapter.special.eos]
                     * (adapter.special.context_length - 1 - len(adapter._encode(t))))
        for t in texts
    ])
    # The end-of-text id is the highest id here, so HF's argmax pooling is right for these prompts.
    assert int(ids.max()) == adapter.special.eos
    with torch.no_grad():
        reference = adapter.model.owlv2.get_text_features(input_ids=ids).pooler_output
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_spliced_token_reproduces_plain_prompt(adapter: Owlv2Adapter) -> None:
    plain = adapter.encode_texts(["a photo of dog", "a photo of cat"])
    spliced = adapter.encode_words(adapter.token_vectors(["dog", "cat"])[:, None])
    torch.testing.assert_close(spliced, plain, rtol=1e-5, atol=1e-6)
    # A different vector at the slot changes the query: the slot is really read.
    other = adapter.encode_words(adapter.token_vectors(["cat", "dog"])[:, None])
    assert not torch.allclose(other, plain)


def test_encode_words_rejects_wrong_width(adapter: Owlv2Adapter) -> None:
    with pytest.raises(ValueError, match="word vectors"):
        adapter.encode_words(torch.zeros(2, 4, adapter.embedding_dim + 1))


# --- boxes and image side ---


def test_box_conversion_round_trip() -> None:
    width, height = 64, 32  # padded square side 64
    pixels = torch.tensor([[8.0, 4.0, 40.0, 24.0]])
    normalized = pixels_to_padded(pixels, width, height)
    assert torch.equal(normalized, torch.tensor([[0.125, 0.0625, 0.625, 0.375]]))
    assert torch.equal(padded_to_pixels(normalized, width, height), pixels)
    # A box reaching into the padding is clipped to the image.
    clipped = padded_to_pixels(torch.tensor([[0.5, 0.25, 1.25, 0.75]]), width, height)
    assert torch.equal(clipped, torch.tensor([[32.0, 16.0, 64.0, 32.0]]))
    assert torch.equal(cxcywh_to_xyxy(torch.tensor([0.5, 0.25, 0.5, 0.25])), torch.tensor([0.25, 0.125, 0.75, 0.375]))


def test_select_target_region_picks_max_iou() -> None:
    predicted = torch.tensor([
        [0.25, 0.25, 0.5, 0.5],  # top left quarter: no overlap
        [0.5, 0.5, 1.0, 1.0],  # whole square: IoU 0.225
        [0.75, 0.75, 0.5, 0.5],  # bottom right quarter: IoU 0.9
    ])
    gt = torch.tensor([0.55, 0.5, 1.0, 1.0])
    assert select_target_region(predicted, gt) == 2


def test_pixel_values_pad_gray_at_bottom_right(adapter: Owlv2Adapter) -> None:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE // 2), (255, 0, 0))  # already S wide: no resize
    pixels = adapter.pixel_values([image])[0]
    mean = torch.tensor(adapter.image_processor.image_mean)[:, None, None]
    std = torch.tensor(adapter.image_processor.image_std)[:, None, None]
    top = (torch.tensor([1.0, 0.0, 0.0])[:, None, None] - mean) / std
    gray = (0.5 - mean) / std
    torch.testing.assert_close(pixels[:, : IMAGE_SIZE // 2], top.expand(3, IMAGE_SIZE // 2, IMAGE_SIZE))
    torch.testing.assert_close(pixels[:, IMAGE_SIZE // 2 :], gray.expand(3, IMAGE_SIZE // 2, IMAGE_SIZE))


def test_image_features_cached(adapter: Owlv2Adapter, train_examples: list[Example], monkeypatch) -> None:
    first = adapter.image_features(train_examples)
    calls = []
    original = adapter._run_vision
    monkeypatch.setattr(adapter, "_run_vision", lambda images: calls.append(len(images)) or original(images))
    again = adapter.image_features(train_examples)
    assert calls == [] and all(a is b for a, b in zip(first, again))
    n_regions = (IMAGE_SIZE // 16) ** 2
    assert first[1].class_embeds.shape == (n_regions, 32) and first[1].boxes.shape == (n_regions, 4)
    assert (first[1].width, first[1].height) == (80, 48)


def test_prepare_targets_in_padded_frame(adapter: Owlv2Adapter) -> None:
    """Hand-made regions for a non-square image: the target is the region over its concept box."""
    example = make_example(64, 32, (32, 16, 32, 16), "dog", color=(1, 2, 3))  # bottom right quarter
    image = example.load_image()
    n, d = 4, 32
    boxes = torch.tensor([  # normalized cxcywh in the 64x64 padded square
        [0.25, 0.125, 0.5, 0.25],  # top left of the image
        [0.75, 0.375, 0.5, 0.25],  # bottom right of the image: the target
        [0.5, 0.5, 1.0, 1.0],  # whole padded square
        [0.75, 0.75, 0.5, 0.5],  # padding only
    ])
    fake = RegionFeatures(torch.randn(n, d, generator=torch.Generator().manual_seed(0)), boxes,
                          torch.zeros(n), torch.zeros(n), torch.ones(n), 64, 32)
    adapter._region_cache[image_key(image)] = fake
    try:
        prepared = adapter.prepare(TrainingData([example], ["dog"]))
    finally:
        adapter._region_cache.pop(image_key(image))
    assert prepared.targets.tolist() == [1]
    unit = F.normalize(fake.class_embeds, dim=-1)
    expected = unit[[0, 2, 3]].mean(0) - unit[1]
    torch.testing.assert_close(prepared.directions[0], expected)


# --- loss ---


def test_loss_matches_table1_formula(adapter: Owlv2Adapter, prepared) -> None:
    vectors = word_vectors(adapter, ["cat", "dog", "cup"])
    concepts = [0, 1, 0]
    loss = adapter.loss(vectors, concepts, prepared, torch.Generator().manual_seed(3), batch_size=4)
    batch = adapter.sample_batches(concepts, prepared, torch.Generator().manual_seed(3), 4)
    queries = adapter.encode_words(vectors)
    expected = []
    for w, row in enumerate(batch):
        per_image = []
        for i in row.tolist():
            cos = F.cosine_similarity(prepared.regions[i].class_embeds.float(), queries[w][None], dim=-1)
            t = int(prepared.targets[i])
            per_image.append(-cos[t] + torch.cat([cos[:t], cos[t + 1:]]).mean())
        expected.append(torch.stack(per_image).mean())
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    torch.testing.assert_close(loss, torch.stack(expected), rtol=1e-5, atol=1e-6)


def test_sample_batches_respect_concepts(adapter: Owlv2Adapter, prepared) -> None:
    batch = adapter.sample_batches([0, 1], prepared, torch.Generator().manual_seed(0), 8)
    dogs, cats = set(prepared.image_indices[0].tolist()), set(prepared.image_indices[1].tolist())
    assert set(batch[0].tolist()) <= dogs and set(batch[1].tolist()) <= cats  # 3 and 2 images: with replacement
    without = adapter.sample_batches([0], prepared, torch.Generator().manual_seed(0), 3)
    assert sorted(without[0].tolist()) == sorted(dogs)  # enough images: no repeats


def test_loss_gradients_are_per_word(adapter: Owlv2Adapter, prepared) -> None:
    vectors = word_vectors(adapter, ["cat", "dog"]).requires_grad_(True)
    loss = adapter.loss(vectors, [0, 1], prepared, torch.Generator().manual_seed(0))
    (grad0,) = torch.autograd.grad(loss[0], vectors, retain_graph=True)
    assert grad0[0].abs().sum() > 0 and torch.count_nonzero(grad0[1]) == 0
    loss.sum().backward()
    assert vectors.grad is not None and vectors.grad.abs().sum() > 0
    assert all(p.grad is None for p in adapter.model.parameters())


def test_loss_deterministic_for_seed(adapter: Owlv2Adapter, prepared) -> None:
    vectors = word_vectors(adapter, ["cat", "dog"])
    a = adapter.loss(vectors, [0, 1], prepared, torch.Generator().manual_seed(7))
    b = adapter.loss(vectors, [0, 1], prepared, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_adam_lowers_loss(adapter: Owlv2Adapter, prepared) -> None:
    vectors = torch.nn.Parameter(word_vectors(adapter, ["cat"], n_vectors=4))
    optimizer = torch.optim.Adam([vectors], lr=1e-2)

    def fixed_batch_loss() -> torch.Tensor:
        return adapter.loss(vectors, [0], prepared, torch.Generator().manual_seed(0), batch_size=8)

    start = fixed_batch_loss().item()
    for _ in range(15):
        optimizer.zero_grad()
        fixed_batch_loss().sum().backward()
        optimizer.step()
    assert fixed_batch_loss().item() < start - 0.05


# --- predict ---


def heldout_examples() -> list[Example]:
    return [
        make_example(64, 64, (10, 10, 30, 30), "dog"),
        make_example(96, 48, (50, 8, 30, 30), "cat", color=(30, 30, 210),
                     extra=[Annotation((5, 5, 10, 10), "dog")]),
        make_example(40, 72, (4, 30, 30, 30), "cat", color=(10, 60, 200)),
    ]


def test_predict_boxes_and_ground_truth(adapter: Owlv2Adapter) -> None:
    heldout = heldout_examples()
    vectors = word_vectors(adapter, ["dog", "cat"])
    done: list[int] = []
    ctx = EvalContext(concepts=CONCEPTS, batch_size=2, progress=done.append, options={"max_detections": 5})
    preds = adapter.predict(vectors, [0, 1], heldout, ctx)
    assert [p.target for p in preds] == ["dog", "cat"] and sum(done) == len(heldout)
    for p in preds:
        assert isinstance(p, BoxPredictions)
        assert len(p.boxes) == len(p.scores) == len(p.gt_boxes) == len(heldout)
        for ex, boxes, scores, gt in zip(heldout, p.boxes, p.scores, p.gt_boxes):
            assert boxes.shape == (5, 4) and scores.shape == (5,)
            assert ((scores >= 0) & (scores <= 1)).all() and torch.all(scores[:-1] >= scores[1:])
            assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
            assert (boxes[:, 2] <= ex.width).all() and (boxes[:, 3] <= ex.height).all()
            assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
            assert torch.equal(gt, torch.tensor(ex.boxes_of(p.target), dtype=torch.float32).reshape(-1, 4))
    assert preds[0].gt_boxes[2].shape == (0, 4)  # no dog in the last image
    assert preds[0].gt_boxes[1].tolist() == [[5.0, 5.0, 15.0, 15.0]]

    adapter.clear_image_cache()
    again = adapter.predict(vectors, [0, 1], heldout, ctx)
    for p, q in zip(preds, again):
        assert all(torch.equal(a, b) for a, b in zip(p.boxes + p.scores, q.boxes + q.scores))


def test_predict_scores_match_hf_detection_forward(adapter: Owlv2Adapter) -> None:
    example = heldout_examples()[1]  # non-square
    n_regions = (IMAGE_SIZE // 16) ** 2
    ctx = EvalContext(concepts=CONCEPTS, options={"max_detections": n_regions})
    (pred,) = adapter.predict(adapter.token_vectors(["dog"])[:, None], [0], [example], ctx)
    prompt = [adapter.special.bos] + adapter._encode("a photo of dog") + [adapter.special.eos]
    ids = torch.tensor([prompt + [adapter.special.pad] * (adapter.special.context_length - len(prompt))])
    with torch.no_grad():
        out = adapter.model(input_ids=ids, pixel_values=adapter.pixel_values([example.load_image()]))
    scores = torch.sigmoid(out.logits[0, :, 0])
    order = scores.argsort(descending=True)
    torch.testing.assert_close(pred.scores[0], scores[order], rtol=1e-5, atol=1e-6)
    expected_boxes = padded_to_pixels(cxcywh_to_xyxy(out.pred_boxes[0, order]), example.width, example.height)
    torch.testing.assert_close(pred.boxes[0], expected_boxes)


def test_predict_undoes_square_padding(adapter: Owlv2Adapter) -> None:
    example = make_example(64, 32, (8, 4, 32, 20), "dog", color=(4, 5, 6))
    image = example.load_image()
    boxes = torch.tensor([[0.375, 0.21875, 0.5, 0.3125], [0.5, 0.5, 1.0, 1.0]])  # cxcywh, side 64
    fake = RegionFeatures(torch.randn(2, 32, generator=torch.Generator().manual_seed(1)), boxes,
                          torch.zeros(2), torch.tensor([5.0, -5.0]), torch.ones(2), 64, 32)
    adapter._region_cache[image_key(image)] = fake
    try:
        ctx = EvalContext(concepts=CONCEPTS, options={"max_detections": 1})
        (pred,) = adapter.predict(adapter.token_vectors(["dog"])[:, None], [0], [example], ctx)
    finally:
        adapter._region_cache.pop(image_key(image))
    assert pred.boxes[0].tolist() == [[8.0, 4.0, 40.0, 24.0]]


def test_predict_refuses_words_and_concept_indices_that_do_not_match(adapter: Owlv2Adapter, train_examples: list[Example]) -> None:
    """Three words with one concept index returned one prediction (two words dropped unseen); an
    index past the concepts was a bare IndexError. As CLIP and SD, a ValueError naming it."""
    ctx = EvalContext(concepts=CONCEPTS, options={"max_detections": 2})
    vectors = word_vectors(adapter, ["dog", "cat", "dog"])
    with pytest.raises(ValueError, match="^3 words but 1 word concepts$"):
        adapter.predict(vectors, [0], train_examples[:1], ctx)
    with pytest.raises(ValueError, match=r"^word concept index 42 is not one of the 2 concepts \(0\.\.1\)$"):
        adapter.predict(vectors, [0, 1, 42], train_examples[:1], ctx)
