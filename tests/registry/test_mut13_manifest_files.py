"""Mutation-testing round 13 pins of what a checkpoint manifest must list (every file kind a loader
reads, named in sorted order, "weights file" only for weights) and of the local-dir download rule
(an mtime after the download is enough to distrust the recorded etag)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry.checkpoints import verify_manifest

from .test_checkpoints import make_folder, sha
from .test_registry_pins import CKPT_FILES, REV, _local_dir_meta

LISTED = {"model.safetensors": b"\x01" * 64}


@pytest.mark.parametrize("name", ["vocab.txt", "spiece.model", "config.yaml", "config.yml", "merges.txt.gz", "preprocessor_config.json"])
def test_each_kind_of_file_a_loader_reads_must_be_listed(tmp_path: Path, name: str) -> None:
    folder = make_folder(tmp_path / "ckpt", {**LISTED, name: b"x"}, {k: sha(v) for k, v in LISTED.items()})
    with pytest.raises(UserError, match=rf"^checkpoint {folder}: file {name.replace('.', '[.]')} is not listed in manifest\.json"):
        verify_manifest(folder, folder / "manifest.json")


def test_a_weights_file_is_called_one_and_the_first_unlisted_is_the_first_in_sorted_order(tmp_path: Path) -> None:
    # os.walk yields the folder's own files (z.bin) before a subfolder's (a/extra.bin): the message names a/ first
    folder = make_folder(tmp_path / "ckpt", {**LISTED, "z.bin": b"1", "a/extra.bin": b"2"}, {k: sha(v) for k, v in LISTED.items()})
    with pytest.raises(UserError, match=r": weights file a/extra\.bin \(and 1 more\) is not listed"):
        verify_manifest(folder, folder / "manifest.json")


def test_a_local_dir_file_whose_mtime_is_after_its_download_is_hashed(tmp_path: Path, monkeypatch) -> None:
    """The ctime is not the only witness: an mtime later than the download record (its ctime
    within the record's slack) is not the downloaded file either."""
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    monkeypatch.delenv("VWBENCH_WEIGHTS", raising=False)
    weights = tmp_path / "weights"
    folder = make_folder(weights / "org" / "model", CKPT_FILES, None)
    target = folder / "model.safetensors"
    _local_dir_meta(folder, "model.safetensors", "f" * 64, age=100)  # recorded 100 s after now: the ctime (now) is before it
    later = target.stat().st_mtime + 1000
    os.utime(target, (later, later))  # ... and the mtime after it
    resolved = resolve_checkpoint(CheckpointPin(hf_id="org/model", revision=REV), weights)
    assert resolved.files["model.safetensors"] == sha(CKPT_FILES["model.safetensors"])
