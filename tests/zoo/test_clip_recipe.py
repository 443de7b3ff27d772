"""The mini CLIP recipe (a few steps of a tiny configuration) and the shipped ``zoo/mini-clip`` and
``zoo/mini-judge`` folders."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

import vwbench.models  # noqa: F401  (torchvision shim before open_clip)
from vwbench.data.synth.dataset import load_synth_dataset
from vwbench.models.clip import OpenClipAdapter
from vwbench.registry.checkpoints import verify_manifest
from vwbench.zoo.manifest import MANIFEST
from vwbench.zoo.recipes.clip import (
    LOG_FILE,
    NEGATIVE,
    POSITIVE,
    SYNTH_DATASETS,
    UNKNOWN,
    WEIGHTS_FILE,
    _multi_positive_nce,
    augment,
    caption_info,
    contrastive_loss,
    relation,
    render_pool,
    train_mini_clip,
)

ZOO = Path(vwbench.models.__file__).parent.parent / "zoo"
TINY = dict(seed=0, width=32, layers=1, steps=16, batch_size=16, lr=3e-3, pool_size=96, evaluate=False)


def _train(out: Path, **options) -> dict:
    """Train mini-clip's recipe at the tiny size (``options`` on top) and return its log."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and what the recipe runs with
    try:
        with torch.random.fork_rng(devices=[]):
            train_mini_clip(out, **{**TINY, **options})
    finally:
        torch.set_num_threads(threads)
    return json.loads((out / LOG_FILE).read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mini_clip") / "clip"
    return out, _train(out)


def test_recipe_writes_a_loadable_open_clip_folder(trained):
    out, log = trained
    assert set(verify_manifest(out, out / MANIFEST)) == {
        "open_clip_config.json", WEIGHTS_FILE, "bpe_simple_vocab.txt.gz", LOG_FILE,
    }
    adapter = OpenClipAdapter.from_pretrained(out)
    assert all(p.dtype == torch.float32 for p in adapter.model.parameters())
    config = json.loads((out / "open_clip_config.json").read_text())["model_cfg"]
    assert config["text_cfg"]["pool_type"] == "eos"
    assert config["text_cfg"]["eos_id"] == adapter.tokenizer.eot_token_id
    assert adapter.embedding_dim == 32
    labels = adapter.classify_images([Image.new("RGB", (64, 64), "red")], ["circle", "square"])
    assert labels[0] in {"circle", "square"}
    assert set(log["wall_s"]) >= {"pool", "train", "total"}
    assert log["recipe"]["seed"] == 0


def test_recipe_loss_goes_down(trained):
    _, log = trained
    losses = [loss for _, loss in log["loss_curve"]]
    assert len(losses) == TINY["steps"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def test_same_seed_same_weights(trained, tmp_path):
    out, _ = trained
    _train(tmp_path / "again")
    assert (tmp_path / "again" / WEIGHTS_FILE).read_bytes() == (out / WEIGHTS_FILE).read_bytes()


def test_channels_last_trains_the_same_model(trained, tmp_path):
    """The layout only reorders the vision tower's sums: the loss curve of a contiguous run
    follows the channels-last one to float rounding (both in float32: bfloat16 rounding would
    hide the comparison)."""
    _, log = trained
    assert log["recipe"]["channels_last"] is True  # mini-clip's default
    channels_last = _train(tmp_path / "channels-last", vision_bf16=False)
    contiguous = _train(tmp_path / "contiguous", vision_bf16=False, channels_last=False)
    assert contiguous["recipe"]["channels_last"] is False
    first = [loss for _, loss in channels_last["loss_curve"]][:4]
    again = [loss for _, loss in contiguous["loss_curve"]][:4]
    assert again == pytest.approx(first, rel=1e-3)


@pytest.mark.parametrize("option", ["vision_bf16", "fused_adamw"])
def test_speed_options_train_the_same_model(trained, tmp_path, option):
    """bfloat16 autocast of the vision tower and the fused AdamW kernel change only rounding: the
    loss curve of a run without the option follows mini-clip's (bf16 to its 8-bit mantissa, fused
    to float rounding)."""
    _, log = trained
    assert log["recipe"][option] is True  # mini-clip's default
    # fused against unfused in float32: bf16's rounding would swamp the difference
    base = {} if option == "vision_bf16" else {"vision_bf16": False}
    reference = _train(tmp_path / "reference", **base) if base else log
    other = _train(tmp_path / option, **base, **{option: False})
    assert other["recipe"][option] is False
    first = [loss for _, loss in reference["loss_curve"]][:4]
    again = [loss for _, loss in other["loss_curve"]][:4]
    assert again == pytest.approx(first, rel=2e-2 if option == "vision_bf16" else 1e-4)
    assert again != first or option == "fused_adamw"  # bf16 really ran


def test_heavy_blur_softens_only_when_asked():
    """``heavy_blur=0`` draws nothing more (older recipes keep their random stream); at 1 every
    image loses much of its pixel-to-pixel detail."""
    pixels, _ = render_pool(16, 0, 64, None, lambda m: None, "3")
    plain_generator, off_generator = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    sharp = augment(pixels, plain_generator)
    assert torch.equal(augment(pixels, off_generator, 1.0, None, 0.0), sharp)
    assert torch.equal(torch.rand(4, generator=plain_generator), torch.rand(4, generator=off_generator))
    # strength 0: no light blur, jitter or noise, so the two differ by the hard blur alone
    sharp = augment(pixels, torch.Generator().manual_seed(0), 0.0)
    soft = augment(pixels, torch.Generator().manual_seed(0), 0.0, None, 1.0)

    def detail(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3))

    assert (detail(soft) < 0.6 * detail(sharp)).all(), (detail(soft) / detail(sharp)).tolist()


def test_plain_captions_name_only_the_category():
    _, mixed = render_pool(40, 0, 64, None, lambda m: None, "3")
    _, plain = render_pool(40, 0, 64, None, lambda m: None, "3", "plain")
    assert any(len(c.split()) == 6 for c in mixed), "the stream's own captions name attributes"
    assert [caption_info(c).category for c in plain] == [caption_info(c).category for c in mixed]
    assert all(len(c.split()) == 4 for c in plain)
    with pytest.raises(ValueError, match="'mixed' or 'plain'"):
        render_pool(1, 0, 64, None, lambda m: None, "3", "fancy")


def test_caption_relations():
    red_circle = caption_info("a photo of a red circle")
    assert relation(red_circle, caption_info("a photo of circle")) == POSITIVE
    assert relation(red_circle, caption_info("a photo of a blue circle")) == NEGATIVE
    assert relation(red_circle, caption_info("a photo of a striped circle")) == UNKNOWN
    assert relation(red_circle, caption_info("a photo of square")) == NEGATIVE
    bluestar = caption_info("a photo of bluestar")
    assert relation(bluestar, caption_info("a photo of star")) == UNKNOWN
    assert relation(bluestar, caption_info("a photo of a red star")) == NEGATIVE
    assert relation(caption_info("a photo of star"), caption_info("a photo of bluestar")) == UNKNOWN


def test_contrastive_loss_ignores_unknowns():
    rel = torch.tensor([[POSITIVE, NEGATIVE, UNKNOWN], [NEGATIVE, POSITIVE, NEGATIVE], [UNKNOWN, NEGATIVE, POSITIVE]])
    logits = torch.eye(3) * 5
    base = _multi_positive_nce(logits, rel)
    assert torch.isfinite(base)
    raised_unknown = logits.clone()
    raised_unknown[0, 2] = 10.0
    assert _multi_positive_nce(raised_unknown, rel) == pytest.approx(float(base))
    raised_negative = logits.clone()
    raised_negative[0, 1] = 10.0
    assert _multi_positive_nce(raised_negative, rel) > base
    # the symmetric loss on unit features is finite and lowest for matching pairs
    scale = torch.tensor(10.0)
    assert contrastive_loss(torch.eye(3), torch.eye(3), scale, rel) < contrastive_loss(torch.eye(3), torch.eye(3)[[1, 0, 2]], scale, rel)


# ---- the shipped checkpoints -------------------------------------------------------------


def _voc_heldout(per_concept: int = 4):
    variant, concepts = SYNTH_DATASETS["synth-voc"]
    spec = types.SimpleNamespace(
        name="synth-voc",
        concepts=[types.SimpleNamespace(name=c, init_word=c, anchor_word=None) for c in concepts],
        heldout_per_concept=per_concept,
        options={"variant": variant},
    )
    split = load_synth_dataset(spec, images_per_concept=0)
    return [e.load_image() for e in split.heldout], [e.concept for e in split.heldout], list(concepts)


@pytest.mark.parametrize("name", ["mini-clip", "mini-judge"])
def test_shipped_checkpoint_loads_and_classifies(name):
    folder = ZOO / name
    if not (folder / MANIFEST).is_file():
        pytest.skip(f"{name} has not been trained yet (vwbench zoo train --only {name})")
    listed = verify_manifest(folder, folder / MANIFEST)
    assert {"open_clip_config.json", WEIGHTS_FILE, "bpe_simple_vocab.txt.gz", LOG_FILE} <= set(listed)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 9 * 1024 * 1024
    adapter = OpenClipAdapter.from_pretrained(folder)
    images, actual, classes = _voc_heldout()
    assert len(images) == 40
    predicted = adapter.classify_images(images, classes)
    accuracy = sum(p == a for p, a in zip(predicted, actual)) / len(actual)
    # a smoke floor: the training logs record 1.00 (mini-clip) and 0.99 (mini-judge) on all 250
    # held-out synth-voc images; an untrained checkpoint scores about 0.1
    assert accuracy >= 0.6, f"{name}: zero-shot accuracy {accuracy:.2f} on 40 held-out synth-voc images"
