"""Builders of submissions (good and hostile) for the submission tests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

HASH_A = "a" * 64
HASH_B = "b" * 64


def transfer_folder(root: Path, body: str, name: str = "my-method", **manifest) -> Path:
    """A transfer-method folder whose transfer.py holds ``body`` (dedented)."""
    folder = root / name
    folder.mkdir(parents=True)
    doc = {"name": name, "authors": ["A. Tester"], "description": "test submission", "license": "MIT", **manifest}
    (folder / "submission.yaml").write_text(yaml.safe_dump(doc))
    (folder / "transfer.py").write_text(textwrap.dedent(body))
    return folder


LSTSQ_BODY = """
import numpy as np

class Transfer:
    def fit(self, source, target, tokens):
        self.T = np.linalg.lstsq(source.astype(np.float64), target.astype(np.float64), rcond=None)[0]

    def map(self, vectors):
        return vectors @ self.T
"""


def hostile(prelude: str, in_fit: str) -> str:
    """A lstsq submission that first does ``in_fit`` inside fit()."""
    body = textwrap.indent(textwrap.dedent(in_fit), " " * 8)
    return f"import numpy as np\n{textwrap.dedent(prelude)}\n\nclass Transfer:\n    def fit(self, source, target, tokens):\n{body}\n        self.T = np.linalg.lstsq(source, target, rcond=None)[0]\n\n    def map(self, vectors):\n        return vectors @ self.T\n"


def linear_map(path: Path, weight: torch.Tensor, bias: torch.Tensor | None = None, **meta) -> Path:
    metadata = {"format": "vwbench.linear/1", "name": "my-map", "source": "clip", "target": "owlv2", "source_vocab_hash": HASH_A, "target_vocab_hash": HASH_B, **meta}
    tensors = {"weight": weight.contiguous()}
    if bias is not None:
        tensors["bias"] = bias.contiguous()
    save_file(tensors, str(path), metadata={k: str(v) for k, v in metadata.items()})
    return path


def embeddings(path: Path, words: dict[str, torch.Tensor], **meta) -> Path:
    metadata = {"format": "vwbench.embeddings/1", "name": "my-words", "model": "clip", "vocab_hash": HASH_A, "dataset": "synth-tiny", **meta}
    save_file({k: v.contiguous() for k, v in words.items()}, str(path), metadata={k: str(v) for k, v in metadata.items()})
    return path


def raw_safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    return path


def planted(n: int = 120, ds: int = 8, dt: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.standard_normal((n, ds)).astype(np.float32)
    target = (source @ rng.standard_normal((ds, dt))).astype(np.float32)
    return source, target, [f"w{i:04d}</w>" for i in range(n)]
