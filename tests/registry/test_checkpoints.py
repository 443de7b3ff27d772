"""Checkpoint resolution: manifests are verified, hub checkpoints are found offline or refused in
one line that says how to fetch them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from vwbench.errors import CheckpointNotFound, UserError
from vwbench.registry import CheckpointPin, resolve_checkpoint
from vwbench.registry.checkpoints import package_dir

REV = "0123456789abcdef0123456789abcdef01234567"
HF_ID = "someorg/some-model"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache and no weights folder, whatever the machine has."""
    cache = tmp_path / "hf-home"
    cache.mkdir()
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("VWBENCH_WEIGHTS", raising=False)
    return cache


def make_folder(root: Path, files: dict[str, bytes], manifest: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps({"files": manifest}))
    return root


FILES = {"config.json": b'{"a": 1}', "weights/model.safetensors": b"\x00" * 1000}


def test_path_checkpoint_with_a_good_manifest(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ckpt", FILES, {k: sha(v) for k, v in FILES.items()})
    resolved = resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    assert resolved.path == folder and resolved.revision is None and resolved.origin == "path"
    assert resolved.files == {k: sha(v) for k, v in FILES.items()}


def test_a_bad_sha256_is_refused_naming_the_file(tmp_path: Path) -> None:
    manifest = {k: sha(v) for k, v in FILES.items()}
    manifest["weights/model.safetensors"] = sha(b"something else")
    folder = make_folder(tmp_path / "ckpt", FILES, manifest)
    with pytest.raises(UserError) as info:
        resolve_checkpoint(CheckpointPin(path=str(folder)))  # manifest.json is verified even when not named
    assert "weights/model.safetensors" in str(info.value) and "corrupted" in str(info.value)
    assert not isinstance(info.value, CheckpointNotFound)


def test_a_missing_listed_file_is_refused(tmp_path: Path) -> None:
    manifest = {k: sha(v) for k, v in FILES.items()} | {"tokenizer.json": sha(b"x")}
    folder = make_folder(tmp_path / "ckpt", FILES, manifest)
    with pytest.raises(UserError, match="file tokenizer.json listed in manifest.json is missing"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))


def test_a_weights_file_the_manifest_leaves_out_is_refused(tmp_path: Path) -> None:
    """Dropping the weights' line from the manifest must not skip their hash check."""
    manifest = {k: sha(v) for k, v in FILES.items() if k != "weights/model.safetensors"}
    folder = make_folder(tmp_path / "ckpt", FILES, manifest)
    with pytest.raises(UserError, match="weights file weights/model.safetensors is not listed in manifest.json"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    (folder / "manifest.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(UserError, match="is not listed"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))


def test_a_named_manifest_must_exist(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ckpt", FILES)
    with pytest.raises(UserError, match="has no manifest.json"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    # without a named manifest every file is hashed
    assert resolve_checkpoint(CheckpointPin(path=str(folder))).files == {k: sha(v) for k, v in FILES.items()}


def test_a_manifest_may_not_point_outside(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ckpt", FILES, {"../secret": sha(b"")})
    with pytest.raises(UserError, match="must be relative, inside the folder"):
        resolve_checkpoint(CheckpointPin(path=str(folder)))


def test_missing_path_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound, match="not found"):
        resolve_checkpoint(CheckpointPin(path=str(tmp_path / "absent")))
    with pytest.raises(CheckpointNotFound, match="inside the vwbench package"):
        resolve_checkpoint(CheckpointPin(path="zoo/no-such-checkpoint", manifest="manifest.json"))


def test_package_relative_paths_start_at_the_package() -> None:
    import vwbench

    assert package_dir() == Path(vwbench.__file__).resolve().parent


def test_missing_hub_checkpoint_gives_one_line(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), weights)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {HF_ID}@{REV} not found in --weights/VWBENCH_WEIGHTS or the Hugging Face cache")
    assert f"--revision {REV} --local-dir {weights}/{HF_ID}" in message and f"--weights {weights}" in message


def test_missing_hub_checkpoint_without_a_weights_dir() -> None:
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision="main"))
    assert f"--local-dir DIR/{HF_ID}, then pass --weights DIR" in str(info.value)


@pytest.mark.parametrize("layout", ["org/name", "org--name"])
def test_weights_dir_layouts(tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    org, name = HF_ID.split("/")
    sub = f"{org}/{name}" if layout == "org/name" else f"{org}--{name}"
    folder = make_folder(tmp_path / "weights" / sub, FILES)
    monkeypatch.setenv("VWBENCH_WEIGHTS", str(tmp_path / "weights"))
    resolved = resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV))
    assert resolved.path == folder and resolved.origin == "weights_dir" and resolved.name == HF_ID
    assert resolved.revision == REV and resolved.files == {k: sha(v) for k, v in FILES.items()}


def _write_local_dir_metadata(folder: Path, rel: str, commit: str, etag: str) -> None:
    meta = folder / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(f"{commit}\n{etag}\n{(folder / rel).stat().st_mtime + 5}\n")


def test_local_dir_download_metadata(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    folder = make_folder(weights / HF_ID, FILES)
    recorded = "f" * 64  # an LFS etag is the file's sha256; it is trusted while the file is unmodified
    _write_local_dir_metadata(folder, "weights/model.safetensors", REV, recorded)
    _write_local_dir_metadata(folder, "config.json", REV, "a" * 40)  # git blob id: the file is hashed
    resolved = resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), weights)
    assert resolved.files == {"config.json": sha(FILES["config.json"]), "weights/model.safetensors": recorded}
    assert resolved.revision == REV
    other = "1" * 40
    with pytest.raises(UserError, match=f"downloaded at revision {REV}, the task pins {other}"):
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=other), weights)


def make_hub_cache(cache: Path, revision: str, files: dict[str, bytes], lfs: set[str]) -> Path:
    """A hub-cache tree: blobs named by sha256 (LFS) or a 40-hex git id, snapshot symlinks."""
    repo = cache / f"models--{HF_ID.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    for rel, data in files.items():
        blob = sha(data) if rel in lfs else hashlib.sha1(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(repo / "blobs" / blob, link.parent), link)
    return snapshot


def test_hub_cache_snapshot(offline_env: Path) -> None:
    snapshot = make_hub_cache(offline_env / "hub", REV, FILES, {"weights/model.safetensors"})
    resolved = resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV))
    assert resolved.path == snapshot and resolved.origin == "hf_cache"
    assert resolved.revision == REV and resolved.name == HF_ID
    assert resolved.files == {k: sha(v) for k, v in FILES.items()}
    # an LFS blob's name is its sha256, read from the link target without reading the file
    blob = snapshot.parents[1] / "blobs" / ("e" * 64)
    blob.write_bytes(b"big weights")
    os.symlink(os.path.relpath(blob, snapshot), snapshot / "extra.bin")
    assert resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV)).files["extra.bin"] == "e" * 64
    # revision "main" follows refs/main
    assert resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision="main")).revision == REV
    # another pinned revision is not there
    with pytest.raises(CheckpointNotFound):
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision="2" * 40))


def test_weights_dir_may_be_a_hub_cache(tmp_path: Path) -> None:
    snapshot = make_hub_cache(tmp_path / "weights", REV, FILES, set())
    resolved = resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), tmp_path / "weights")
    assert resolved.path == snapshot and resolved.origin == "weights_dir"


def test_a_link_to_a_missing_file_in_a_weights_folder_says_how_to_fetch_it_again(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    folder = make_folder(weights / HF_ID, FILES)
    (folder / "weights" / "model.safetensors").unlink()
    os.symlink(tmp_path / "gone.safetensors", folder / "weights" / "model.safetensors")
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), weights)
    assert str(info.value) == (
        f"checkpoint {HF_ID}: {folder / 'weights' / 'model.safetensors'} is a link to a file that is missing (an interrupted download?); "
        f"fetch it again with: hf download {HF_ID} --revision {REV} --local-dir {folder}"
    )


def test_a_hub_cache_snapshot_whose_blob_is_gone_says_how_to_fetch_it_again(offline_env: Path) -> None:
    snapshot = make_hub_cache(offline_env / "hub", REV, FILES, {"weights/model.safetensors"})
    (snapshot / "weights" / "model.safetensors").resolve().unlink()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV))
    assert str(info.value).endswith(f"is a link to a file that is missing (an interrupted download?); fetch it again with: hf download {HF_ID} --revision {REV}")


def test_a_link_to_a_missing_file_in_a_mini_checkpoint_says_how_to_rebuild_it(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "zoo" / "mini-clip", FILES)
    os.symlink(tmp_path / "gone", folder / "extra.safetensors")
    with pytest.raises(CheckpointNotFound, match="is a link to a file that is missing .*; rebuild it with: vwbench zoo train --only mini-clip$"):
        resolve_checkpoint(CheckpointPin(path=str(folder)))


def test_a_manifest_nested_too_deep_is_a_one_line_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ckpt", FILES)
    (folder / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(UserError, match="^checkpoint manifest .* is unreadable"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))


def test_a_gone_blob_of_a_hub_cache_given_as_weights_names_that_cache(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    snapshot = make_hub_cache(weights, REV, FILES, {"weights/model.safetensors"})
    (snapshot / "weights" / "model.safetensors").resolve().unlink()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(CheckpointPin(hf_id=HF_ID, revision=REV), weights)
    assert str(info.value).endswith(f"fetch it again with: hf download {HF_ID} --revision {REV} --cache-dir {weights}")


def test_a_manifest_listed_file_linking_to_nothing_says_how_to_rebuild_it(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "zoo" / "mini-clip", FILES, {k: sha(v) for k, v in FILES.items()})
    (folder / "config.json").unlink()
    os.symlink(tmp_path / "gone.json", folder / "config.json")
    with pytest.raises(CheckpointNotFound, match=f"^checkpoint {folder}: {folder / 'config.json'} is a link to a file that is missing .*; rebuild it with: vwbench zoo train --only mini-clip$"):
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
