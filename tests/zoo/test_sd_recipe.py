"""The mini SD recipe (a few steps of a tiny configuration) and the shipped ``zoo/mini-sd`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vwbench.models  # noqa: F401  (torchvision shim before diffusers)
from vwbench.models.sd import StableDiffusionAdapter
from vwbench.registry.checkpoints import verify_manifest
from vwbench.zoo.manifest import MANIFEST
from vwbench.zoo.recipes.sd import DATASET_CONCEPTS, tiny_config, train_mini_sd

SHIPPED = Path(vwbench.models.__file__).parent.parent / "zoo" / "mini-sd"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mini_sd") / "sd"
    with torch.random.fork_rng(devices=[]):
        result = train_mini_sd(out, seed=0, config=tiny_config())
    return out, result


def test_recipe_writes_a_loadable_diffusers_folder(trained):
    out, result = trained
    for name in ("model_index.json", "tokenizer", "text_encoder", "unet", "vae", "scheduler",
                 "samples.png", "training_log.json", MANIFEST):
        assert (out / name).exists(), name
    assert set(verify_manifest(out, out / MANIFEST)) >= {"unet/diffusion_pytorch_model.safetensors", "samples.png"}
    adapter = StableDiffusionAdapter.from_pretrained(out)
    assert adapter.prediction_type == "v_prediction"
    assert all(p.dtype == torch.float32 for m in (adapter.unet, adapter.vae, adapter.text_encoder) for p in m.parameters())
    assert adapter.image_size == 32
    assert adapter.vae.config.scaling_factor == pytest.approx(result["vae"]["scaling_factor"])
    images = adapter.generate(adapter.token_vectors(["circle"])[:, None, :], 1, steps=2)
    assert images[0][0].size == (32, 32)
    log = json.loads((out / "training_log.json").read_text())
    assert set(log["phases_wall_s"]) >= {"render_pool_s", "vae_s", "unet_s", "total_s"}


def test_recipe_losses_decrease(trained):
    _, result = trained
    vae_loss = result["vae"]["loss"]
    assert vae_loss[-1][1] < vae_loss[0][1]
    evals = result["unet"]["eval_loss_unweighted"]  # fixed batch: items, timesteps, noise
    assert evals[-1][1] < 0.8 * evals[0][1]
    assert result["unet"]["ema_eval_loss"] < evals[0][1]


def test_training_text_states_match_the_adapter(trained):
    """The recipe conditions the UNet on ``text_encoder(ids).last_hidden_state`` of the padded
    caption; the adapter must encode "a photo of <name>" (as text and as a spliced word) the same."""
    out, _ = trained
    adapter = StableDiffusionAdapter.from_pretrained(out)
    text, _ = adapter.encode_text_states(["a photo of circle"])
    word, _ = adapter.encode_word_states(adapter.token_vectors(["circle"])[:, None, :])
    ids = adapter.tokenizer("a photo of circle", padding="max_length", max_length=adapter.special.context_length)
    direct = adapter.text_encoder(input_ids=torch.tensor([ids.input_ids])).last_hidden_state
    torch.testing.assert_close(text, word)
    torch.testing.assert_close(text, direct)


def test_dataset_concepts_are_single_tokens_of_the_shared_vocabulary(trained):
    out, _ = trained
    adapter = StableDiffusionAdapter.from_pretrained(out)
    for names in DATASET_CONCEPTS.values():
        assert adapter.token_vectors(names).shape == (10, adapter.embedding_dim)


@pytest.mark.skipif(not (SHIPPED / MANIFEST).exists(), reason="zoo/mini-sd is not built")
def test_shipped_mini_sd_loads_and_generates():
    verify_manifest(SHIPPED, SHIPPED / MANIFEST)
    adapter = StableDiffusionAdapter.from_pretrained(SHIPPED)
    assert adapter.prediction_type == "v_prediction"
    assert adapter.image_size == 64
    assert all(p.dtype == torch.float32 for p in adapter.unet.parameters())
    images = adapter.generate(adapter.token_vectors(["circle", "bluestar"])[:, None, :], 1, steps=3)
    assert [im.size for word in images for im in word] == [(64, 64), (64, 64)]
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 10_000_000  # its share of the zoo's 30 MB (tests/zoo/test_shipped_zoo.py checks the sum)
