"""A tiny random-config open_clip CLIP checkpoint, in the folder format of open_clip HF repos.

The folder holds ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``),
``open_clip_model.safetensors`` and the vocabulary's ``bpe_simple_vocab.txt.gz``, which is what
:class:`vwbench.models.clip.OpenClipAdapter` loads. The architecture is open_clip's own ``CLIP``
(ViT vision tower, transformer text tower), only very small.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

import vwbench.models  # noqa: F401  (installs the torchvision shim before open_clip imports)
import open_clip  # noqa: E402
from vwbench.models.clip import BPE_FILE, CONFIG_FILE, build_open_clip, preprocess_config  # noqa: E402

WEIGHTS_FILE = "open_clip_model.safetensors"


def tiny_clip_config(
    vocab_size: int, eos_id: int, *, image_size: int = 32, width: int = 32, context_length: int = 32
) -> dict[str, Any]:
    """The ``model_cfg`` of a tiny CLIP: 2-layer towers, 2 heads, patch size ``image_size // 4``.

    The text tower pools at the end-of-text token (``pool_type="eos"``), so open_clip's own
    ``encode_text`` stays right even for ids above the end-of-text id.
    """
    if width % 16:
        raise ValueError(f"width must be a multiple of 16 (2 heads of width >= 8), got {width}")
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
    return {
        "embed_dim": width,
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": image_size // 4,
            "layers": 2,
            "width": width,
            "head_width": width // 2,
            "mlp_ratio": 2.0,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": width,
            "heads": 2,
            "layers": 2,
            "mlp_ratio": 2.0,
            "pool_type": "eos",
            "eos_id": eos_id,
            "pad_id": 0,
        },
    }


def save_tiny_clip(
    out_dir: Path,
    vocab_dir: Path,
    seed: int = 0,
    *,
    image_size: int = 32,
    width: int = 32,
    context_length: int = 32,
) -> Path:
    """Build a random tiny CLIP over the vocabulary in ``vocab_dir`` and save it to ``out_dir``.

    The same arguments give the same weights. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    bpe = Path(vocab_dir) / BPE_FILE
    if not bpe.is_file():
        raise FileNotFoundError(f"{bpe} not found: the vocabulary folder needs open_clip's gzip merges")
    tokenizer = open_clip.SimpleTokenizer(bpe_path=str(bpe))

    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": tiny_clip_config(
            len(tokenizer.encoder),
            tokenizer.eot_token_id,
            image_size=image_size,
            width=width,
            context_length=context_length,
        ),
        "preprocess_cfg": preprocess_config(image_size),
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    shutil.copyfile(bpe, out_dir / BPE_FILE)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_open_clip(out_dir)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE))
    return out_dir
