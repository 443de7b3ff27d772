"""A tiny random-weight Stable Diffusion saved in the diffusers folder layout.

The components are the real classes (``UNet2DConditionModel``, ``AutoencoderKL``, transformers'
``CLIPTextModel`` and ``CLIPTokenizer``, ``DDPMScheduler``) at toy sizes, so everything that loads
``stabilityai/stable-diffusion-2-1`` loads this folder the same way. The tokenizer pads with ``"!"``
as SD 2.1's does (its OpenCLIP text tower pads with id 0), which keeps pad and end-of-text apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

ensure_torchvision_importable()

import diffusers  # noqa: E402
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

TEXT_WIDTH = 32
CONTEXT_LENGTH = 77
PAD_TOKEN = "!"


def _tokenizer(vocab_dir: Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(
        str(vocab_dir), pad_token=PAD_TOKEN, model_max_length=CONTEXT_LENGTH
    )


def _text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        projection_dim=TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="gelu",  # SD 2.x's OpenCLIP text tower; OpenAI CLIP uses quick_gelu
        # The vocabulary's own ids: the defaults (49406/49407) are outside a tiny vocabulary.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def _unet(sample_size: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=(2, 4),
        use_linear_projection=True,  # as SD 2.x
        norm_num_groups=32,
    )


def _vae(sample_size: int) -> AutoencoderKL:
    block_out_channels = (16, 32)
    scale = 2 ** (len(block_out_channels) - 1)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=block_out_channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=sample_size * scale,
    )


def _scheduler(prediction_type: str) -> DDPMScheduler:
    # SD 2.1's noise schedule.
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type=prediction_type,
        steps_offset=1,
    )


def _model_index() -> dict:
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def save_tiny_sd(
    out_dir: Path,
    vocab_dir: Path,
    seed: int = 0,
    *,
    prediction_type: str = "v_prediction",
    sample_size: int = 8,
) -> Path:
    """Build a random tiny SD on the CLIP vocabulary in ``vocab_dir`` and save it to ``out_dir``.

    ``sample_size`` is the latent side; images are twice as large (the VAE downsamples once).
    Weights depend only on ``seed`` and the arguments. Returns ``out_dir``.
    """
    if prediction_type not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(Path(vocab_dir))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _text_encoder(tokenizer)
        unet = _unet(sample_size)
        vae = _vae(sample_size)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    text_encoder.save_pretrained(out_dir / "text_encoder", safe_serialization=True)
    unet.save_pretrained(out_dir / "unet", safe_serialization=True)
    vae.save_pretrained(out_dir / "vae", safe_serialization=True)
    _scheduler(prediction_type).save_pretrained(out_dir / "scheduler")
    (out_dir / "model_index.json").write_text(json.dumps(_model_index(), indent=2) + "\n")
    return out_dir
