"""Mutation-testing round 12: a broken link in the default hub cache, found after a --weights
folder that lacks the checkpoint, is fetched again into that default cache (no --cache-dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.errors import CheckpointNotFound
from vwbench.registry import CheckpointPin, resolve_checkpoint

from .test_checkpoints import FILES, HF_ID, REV, make_hub_cache, offline_env  # noqa: F401


def test_a_gone_blob_in_the_default_cache_is_not_fetched_into_the_weights_folder(offline_env: Path, tmp_path: Path) -> None:  # noqa: F811
    weights = tmp_path / "weights"
    weights.mkdir()  # holds no copy of the checkpoint: the hub cache's is the one found
    snapshot = make_hub_cache(offline_env / "hub", REV, FILES, {"weights/model.safetensors"})
    (snapshot / "weights" / "model.safetensors").resolve().unlink()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), weights)
    message = str(info.value)
    assert message.endswith(f"fetch it again with: hf download {HF_ID} --revision {REV}"), message
    assert "--cache-dir" not in message and str(weights) not in message
