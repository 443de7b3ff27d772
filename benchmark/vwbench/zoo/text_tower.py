"""An open_clip CLIP's text tower as a transformers ``CLIPTextModel``.

Stable Diffusion 2.1 conditions on the text tower of an OpenCLIP model trained on its own, which
diffusers loads as a transformers ``CLIPTextModel``. The mini SD does the same with a mini CLIP of
the zoo: this module converts the open_clip text transformer's weights (token and position
embeddings, the residual blocks with their fused ``in_proj``, ``ln_final``) into that class. The
conversion is exact: the causal mask, the exact GELU and the LayerNorm epsilon are the same in both
implementations, so both give the same hidden states for the same token ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from vwbench.compat.torchvision_ops import ensure_torchvision_importable
from vwbench.jsonio import read_json

ensure_torchvision_importable()

from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"

_BLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}


def text_config_from_open_clip(
    model_cfg: dict, *, bos_token_id: int, eos_token_id: int, pad_token_id: int
) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` of an open_clip ``model_cfg``'s text tower."""
    text = model_cfg["text_cfg"]
    if text.get("hf_model_name") or text.get("quick_gelu") or model_cfg.get("quick_gelu"):
        raise ValueError("only open_clip's own CLIP text transformer with exact GELU can be converted")
    width = int(text["width"])
    return CLIPTextConfig(
        vocab_size=int(text["vocab_size"]),
        hidden_size=width,
        intermediate_size=int(width * float(text.get("mlp_ratio", 4.0))),
        projection_dim=int(model_cfg["embed_dim"]),
        num_hidden_layers=int(text["layers"]),
        num_attention_heads=int(text["heads"]),
        max_position_embeddings=int(text["context_length"]),
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def text_state_from_open_clip(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """``CLIPTextModel`` state dict of an open_clip CLIP's text-tower tensors (the projection and
    everything visual are dropped: SD conditions on the hidden states)."""
    out = {
        "embeddings.token_embedding.weight": state["token_embedding.weight"],
        "embeddings.position_embedding.weight": state["positional_embedding"],
        "final_layer_norm.weight": state["ln_final.weight"],
        "final_layer_norm.bias": state["ln_final.bias"],
    }
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        weight, bias = state[src + "attn.in_proj_weight"], state[src + "attn.in_proj_bias"]
        for name, w, b in zip("qkv", weight.chunk(3), bias.chunk(3)):
            out[f"{dst}self_attn.{name}_proj.weight"] = w
            out[f"{dst}self_attn.{name}_proj.bias"] = b
        for old, new in _BLOCK_RENAMES.items():
            out[dst + new] = state[src + old]
    return {k: v.detach().clone().float().contiguous() for k, v in out.items()}


def text_model_from_open_clip(
    folder: Path, *, bos_token_id: int, eos_token_id: int, pad_token_id: int
) -> CLIPTextModel:
    """The text tower of the open_clip checkpoint in ``folder`` (``open_clip_config.json`` +
    ``open_clip_model.safetensors``, the zoo's layout) as a float32 ``CLIPTextModel``."""
    folder = Path(folder)
    model_cfg = read_json(folder / OPEN_CLIP_CONFIG)["model_cfg"]
    config = text_config_from_open_clip(
        model_cfg, bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    model = CLIPTextModel(config)
    state = text_state_from_open_clip(load_file(str(folder / OPEN_CLIP_WEIGHTS)), config.num_hidden_layers)
    if any(key.startswith("text_model.") for key in model.state_dict()):  # transformers < 5 nests the tower
        state = {"text_model." + k: v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{folder}: text tower does not convert (missing {missing}, unexpected {unexpected})")
    return model.eval()
