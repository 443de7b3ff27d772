"""A tiny random-config OWLv2 checkpoint in the layout of google/owlv2-base-patch16-ensemble.

The folder holds ``config.json`` + ``model.safetensors`` (``Owlv2ForObjectDetection``), the CLIP
tokenizer files and ``preprocessor_config.json`` (``Owlv2ImageProcessor``), so the adapter loads
it exactly as it loads the real snapshot. Nothing is downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

# The OWLv2 classes import torchvision's image ops.
ensure_torchvision_importable()

from transformers import (  # noqa: E402
    CLIPTokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
)

TINY_WIDTH = 32
TINY_LAYERS = 2
TINY_HEADS = 2
CONTEXT_LENGTH = 16  # the real OWLv2 text tower's max_position_embeddings


def tiny_owlv2_config(
    tokenizer: CLIPTokenizer, *, image_size: int = 64, patch_size: int = 16
) -> Owlv2Config:
    """A ~0.1M-parameter OWLv2 config whose text side matches ``tokenizer``'s vocabulary."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    common = dict(
        hidden_size=TINY_WIDTH,
        intermediate_size=2 * TINY_WIDTH,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        # The default (1.0) gives a model that does not train (FACTS.md).
        initializer_range=0.02,
    )
    text_config = dict(
        common,
        vocab_size=len(tokenizer),
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_id,
    )
    vision_config = dict(common, image_size=image_size, patch_size=patch_size)
    return Owlv2Config(text_config=text_config, vision_config=vision_config, projection_dim=TINY_WIDTH)


def save_tiny_owlv2(
    out_dir: Path, vocab_dir: Path, seed: int = 0, *, image_size: int = 64, patch_size: int = 16
) -> Path:
    """Build a seeded random ``Owlv2ForObjectDetection`` on the CLIP vocabulary in ``vocab_dir``
    (``vocab.json`` + ``merges.txt``) and save it with its tokenizer and image processor in
    ``out_dir``. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    vocab_dir = Path(vocab_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = CLIPTokenizer.from_pretrained(vocab_dir)
    config = tiny_owlv2_config(tokenizer, image_size=image_size, patch_size=patch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Owlv2ForObjectDetection(config).eval()

    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    # The real snapshot also carries the raw BPE files next to tokenizer.json.
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(vocab_dir / name, out_dir / name)
    Owlv2ImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(out_dir)
    return out_dir
