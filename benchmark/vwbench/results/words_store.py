"""Trained word sets on disk: safetensors with their metadata, addressed by a cache key.

The key hashes everything that determines the trained vectors (model checkpoint files, dataset
manifest, concepts, init words, hyperparameters, seed, vwbench's release), so asking for the same
words again reuses the file, and changing any input trains anew.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from vwbench.jsonio import parse_json
from vwbench.results.atomic import atomic_write_bytes

WORDS_FORMAT = "vwbench.words/1"


@dataclass
class WordSet:
    """Trained words ``vectors[W, n, dim]`` and, per word, its concept, trial and init word."""

    vectors: torch.Tensor
    concepts: list[str]
    trials: list[int]
    init_words: list[str]
    metadata: dict[str, Any]


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def release_key_part() -> dict[str, str]:
    """What every cache key (words, results, features, studies) adds for the code: vwbench's
    release, so that an upgrade computes anew instead of showing the old code's numbers as its
    own. Within one release (a development checkout between commits) stored work is reused, and
    `vwbench run` says when a reused result was made at another commit."""
    import vwbench

    return {"vwbench": vwbench.__version__}


def dtype_key_part(dtype: torch.dtype) -> dict[str, str]:
    """What a cache key adds for the compute dtype: nothing for float32 (so keys made before the
    dtype was keyed stay valid), its name otherwise (fp16 on a GPU computes other numbers)."""
    return {} if dtype == torch.float32 else {"dtype": str(dtype).replace("torch.", "")}


def tensor_checksum(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """sha256 over the tensors' names, shapes, dtypes and bytes and the other metadata, stored in
    the file's metadata: a file that parses but whose bytes changed is caught on read."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    return h.hexdigest()


def save_wordset(path: Path, words: WordSet) -> None:
    meta = {
        "format": WORDS_FORMAT,
        "concepts": json.dumps(words.concepts),
        "trials": json.dumps(words.trials),
        "init_words": json.dumps(words.init_words),
        "metadata": json.dumps(words.metadata, sort_keys=True, default=str),
    }
    tensors = {"vectors": words.vectors.contiguous().to(torch.float32)}
    meta["checksum"] = tensor_checksum(tensors, meta)
    atomic_write_bytes(path, save(tensors, metadata=meta), phase="words")


def load_wordset(path: Path) -> WordSet | None:
    """The word set at ``path``, or ``None`` if it is missing or unreadable (then it is retrained:
    a torn or foreign file is never used)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        if meta.get("format") != WORDS_FORMAT or "vectors" not in tensors:
            return None
        # files written before checksums were stored have none; every file written since has one
        if "checksum" in meta and meta["checksum"] != tensor_checksum(tensors, meta):
            return None
        words = WordSet(
            vectors=tensors["vectors"],
            concepts=parse_json(meta["concepts"]),
            trials=parse_json(meta["trials"]),
            init_words=parse_json(meta["init_words"]),
            metadata=parse_json(meta["metadata"]),
        )
        lengths = {len(words.concepts), len(words.trials), len(words.init_words)}
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, TypeError):
        return None
    if words.vectors.ndim != 3 or lengths != {words.vectors.shape[0]} or not isinstance(words.metadata, dict):
        return None
    if not torch.isfinite(words.vectors).all():
        return None
    return words
