"""The paper-tier architectures with random weights, for measuring speed on a GPU.

Speed does not depend on the weights, so ``vwbench bench --tier paper`` builds the three task
models from their configurations (the checkpoints of tasks/models/paper.yaml) at the paper's image sizes
without downloading anything: Stable Diffusion 2.1 (768 px, v-prediction, OpenCLIP ViT-H text
tower of 23 layers), OWLv2 base/16 ensemble (960 px) and DFN2B CLIP ViT-L/14 (224 px, quick-gelu).
The configurations are the published ``config.json`` / ``open_clip_config.json`` values of those
checkpoints. The tokenizer is the mini zoo's CLIP BPE vocabulary (a subset of the 49,408 tokens);
the embedding tables have the full 49,408 rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

ensure_torchvision_importable()

VOCAB_SIZE = 49408
VOCAB_DIR = Path(__file__).resolve().parents[1] / "zoo" / "vocab"

# stabilityai/stable-diffusion-2-1: unet/config.json, vae/config.json, text_encoder/config.json, scheduler
SD21_UNET: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "attention_head_dim": (5, 10, 20, 20),
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "upcast_attention": True,
    "norm_num_groups": 32,
}
SD21_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}
SD21_TEXT: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
SD21_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "steps_offset": 1,
}
# google/owlv2-base-patch16-ensemble: transformers' Owlv2 defaults are base/16, the ensemble runs at 960 px
OWLV2_VISION: dict[str, Any] = {"image_size": 960, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
OWLV2_TEXT: dict[str, Any] = {"vocab_size": VOCAB_SIZE, "hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8, "intermediate_size": 2048, "max_position_embeddings": 16}
# apple/DFN2B-CLIP-ViT-L-14: open_clip's ViT-L-14-quickgelu
DFN_CLIP_MODEL = "ViT-L-14-quickgelu"


def _clip_tokenizer(**kwargs: Any):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(VOCAB_DIR), **kwargs)


def build_sd(device: torch.device, dtype: torch.dtype):
    """Stable Diffusion 2.1 with random weights (``StableDiffusionAdapter``)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vwbench.models.sd import StableDiffusionAdapter

    tokenizer = _clip_tokenizer(pad_token="!", model_max_length=77)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    with torch.device(device):
        text = CLIPTextModel(CLIPTextConfig(**SD21_TEXT, **ids))
        unet = UNet2DConditionModel(**SD21_UNET)
        vae = AutoencoderKL(**SD21_VAE)
    return StableDiffusionAdapter(tokenizer, text, unet, vae, DDPMScheduler(**SD21_SCHEDULER), device=device, dtype=dtype)


def build_owlv2(device: torch.device, dtype: torch.dtype):
    """OWLv2 base/16 ensemble with random weights (``Owlv2Adapter``)."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor

    from vwbench.models.owlv2 import Owlv2Adapter

    tokenizer = _clip_tokenizer()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    text = {**OWLV2_TEXT, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": pad}
    config = Owlv2Config(text_config=text, vision_config=OWLV2_VISION, projection_dim=512)
    with torch.device(device):
        model = Owlv2ForObjectDetection(config)
    size = OWLV2_VISION["image_size"]
    return Owlv2Adapter(model.to(dtype).eval(), tokenizer, Owlv2ImageProcessor(size={"height": size, "width": size}))


def build_clip(device: torch.device, dtype: torch.dtype):
    """DFN2B CLIP ViT-L/14 with random weights (``OpenClipAdapter``)."""
    import open_clip

    from vwbench.models.clip import BPE_FILE, OpenClipAdapter, preprocess_config

    precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    quiet = logging.Filter()
    quiet.filter = lambda record: not str(record.msg).startswith("No pretrained weights loaded")  # type: ignore[method-assign]
    logging.getLogger().addFilter(quiet)  # random weights are the point here
    try:
        model = open_clip.create_model(DFN_CLIP_MODEL, pretrained=None, precision=precision, device=device)
    finally:
        logging.getLogger().removeFilter(quiet)
    tokenizer = open_clip.SimpleTokenizer(bpe_path=str(VOCAB_DIR / BPE_FILE), context_length=77)
    cfg = preprocess_config(224)
    preprocess = open_clip.image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"], resize_mode=cfg["resize_mode"], interpolation=cfg["interpolation"]
    )
    return OpenClipAdapter(model, tokenizer, preprocess, device=device, dtype=dtype)


BUILDERS = {"sd": build_sd, "owlv2": build_owlv2, "clip": build_clip}


WEIGHT_SEED = 0


def build_paper_model(family: str, device: torch.device, dtype: torch.dtype):
    """The paper-tier adapter of ``family`` with random weights, on ``device`` in ``dtype``.

    The weights are drawn from a fixed seed: the two sides of a bench comparison build the model
    in separate processes, and their losses can only agree if both get the same weights."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(WEIGHT_SEED)
        return BUILDERS[family](device, dtype)
