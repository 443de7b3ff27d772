"""An open_clip text tower converted to the transformers ``CLIPTextModel`` that the mini SD uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vwbench.models  # noqa: F401  (torchvision shim before open_clip/diffusers)
from vwbench.models.clip import OpenClipAdapter
from vwbench.models.sd import StableDiffusionAdapter
from vwbench.zoo.build import ZOO_DIR, entry_folder
from vwbench.zoo.recipes.sd import tiny_config, train_mini_sd
from vwbench.zoo.text_tower import text_model_from_open_clip
from vwbench.zoo.tiny_clip import save_tiny_clip
from vwbench.zoo.vocabulary import VOCAB_DIR


@pytest.fixture(scope="module")
def tower(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tower") / "clip", VOCAB_DIR, seed=3, width=48, context_length=24)


def _convert(folder: Path, adapter: OpenClipAdapter):
    s = adapter.special
    return text_model_from_open_clip(folder, bos_token_id=s.bos, eos_token_id=s.eos, pad_token_id=s.pad)


def _ids(adapter: OpenClipAdapter, text: str) -> torch.Tensor:
    s = adapter.special
    body = [s.bos, *adapter.encode(text), s.eos]
    return torch.tensor([body + [s.pad] * (s.context_length - len(body))])


def test_converted_tower_gives_open_clips_hidden_states_and_features(tower):
    adapter = OpenClipAdapter.from_pretrained(tower)
    model = _convert(tower, adapter)
    text = adapter.text
    assert model.config.hidden_size == 48 and model.config.max_position_embeddings == 24
    for caption in ("a photo of circle", "a photo of a striped red star"):
        ids = _ids(adapter, caption)
        with torch.no_grad():
            x = text.token_embedding(ids) + text.positional_embedding
            x = text.ln_final(text.transformer(x, attn_mask=text.attn_mask))
            hidden = model(input_ids=ids).last_hidden_state
            eos = int((ids[0] == adapter.special.eos).nonzero()[0])
            features = hidden[:, eos] @ text.text_projection
            expected = text.encode_text(ids)
        torch.testing.assert_close(hidden, x, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_quick_gelu_towers_are_refused(tower, tmp_path):
    import shutil

    folder = tmp_path / "quick"
    shutil.copytree(tower, folder)
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["quick_gelu"] = True
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="exact GELU"):
        text_model_from_open_clip(folder, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def test_sd_recipe_conditions_on_the_frozen_tower(tower, tmp_path):
    out = tmp_path / "sd"
    with torch.random.fork_rng(devices=[]):
        train_mini_sd(out, seed=0, config=tiny_config(text_tower=str(tower), unet_steps=10, eval_every=5))
    sd = StableDiffusionAdapter.from_pretrained(out)
    assert sd.unet.config.cross_attention_dim == 48
    assert sd.special.context_length == 24
    clip = OpenClipAdapter.from_pretrained(tower)
    frozen = _convert(tower, clip)
    ids = _ids(clip, "a photo of circle")
    with torch.no_grad():
        torch.testing.assert_close(sd.text_encoder(input_ids=ids).last_hidden_state,
                                   frozen(input_ids=ids).last_hidden_state, rtol=1e-3, atol=2e-3)  # saved in float16
    words, _ = sd.encode_word_states(sd.token_vectors(["circle"])[:, None, :])
    texts, _ = sd.encode_text_states(["a photo of circle"])
    torch.testing.assert_close(words, texts)


def test_shipped_mini_sd_conditions_on_the_shipped_mini_sd_text():
    tower, sd_folder = entry_folder(ZOO_DIR, "mini-sd-text"), entry_folder(ZOO_DIR, "mini-sd")
    if not (tower / "manifest.json").is_file():
        pytest.skip("mini-sd-text is not shipped and was not built here (vwbench zoo train --only mini-sd-text)")
    if json.loads((sd_folder / "training_log.json").read_text())["text_tower"]["weights_sha256"] != (
        json.loads((tower / "manifest.json").read_text())["files"]["open_clip_model.safetensors"]
    ):
        pytest.skip("the mini-sd-text built here is not the one the shipped mini-sd was trained on")
    clip = OpenClipAdapter.from_pretrained(tower)
    sd = StableDiffusionAdapter.from_pretrained(sd_folder)
    ids = _ids(clip, "a photo of a dotted heart")
    with torch.no_grad():
        torch.testing.assert_close(sd.text_encoder(input_ids=ids).last_hidden_state,
                                   _convert(tower, clip)(input_ids=ids).last_hidden_state, rtol=1e-2, atol=1e-2)
