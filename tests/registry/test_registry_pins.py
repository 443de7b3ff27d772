"""Pins found by mutation testing (round 3) of the registry: include order and cycles, the error
count suffix, ... (each test names the behaviour it holds in place)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry

from .conftest import edit, line_of
from .test_checkpoints import make_folder, sha
from .test_loader import load_error


def test_an_include_cycle_names_every_file_of_the_loop_back_to_the_first(tasks_copy: Path) -> None:
    defaults = (tasks_copy / "defaults.yaml").resolve()
    loop = defaults.with_name("_loop.yaml")
    loop.write_text("include: defaults.yaml\n")
    defaults.write_text("include: _loop.yaml\n" + defaults.read_text())
    assert load_error(tasks_copy) == f"{loop}:1: include cycle: {defaults} -> {loop} -> {defaults}; remove the include that closes the loop"


def test_a_list_of_includes_merges_in_order_the_last_one_winning(tasks_copy: Path) -> None:
    datasets = tasks_copy / "datasets"
    (datasets / "_first.yaml").write_text("heldout_per_concept: 3\noptions: {seed: 1}\n")
    (datasets / "_second.yaml").write_text("heldout_per_concept: 4\n")
    edit(datasets / "synth-coco.yaml", "include: _synth.yaml", "include: [_synth.yaml, _first.yaml, _second.yaml]")
    coco = TaskRegistry.from_dir(tasks_copy).dataset("synth-coco")
    assert coco.heldout_per_concept == 4  # _second over _first over _synth's 25
    assert coco.options == {"image_size": 64, "seed": 1, "variant": "coco"}  # _first's seed over _synth's 0; the file's variant


def test_a_blank_include_name_is_an_empty_file_name_not_a_missing_file(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "synth-coco.yaml"
    edit(path, "include: _synth.yaml", 'include: "   "')
    message = load_error(tasks_copy)
    assert f"datasets/synth-coco.yaml:{line_of(path, 'include:')}: included file " in message
    assert message.endswith("included file '   ' is an empty file name; fix the include or the file it names")


@pytest.mark.parametrize(("typos", "more"), [(1, ""), (2, " (and 1 more error)"), (3, " (and 2 more errors)")])
def test_further_errors_are_counted_after_the_first(tasks_copy: Path, typos: int, more: str) -> None:
    path = tasks_copy / "defaults.yaml"
    edit(path, "  lr: 1.0e-4", "".join(f"  l{'r' * (i + 2)}: 1\n" for i in range(typos)) + "  lr: 1.0e-4")
    message = load_error(tasks_copy)
    assert message == f"{path.resolve()}:{line_of(path, 'lrr:')}: unknown field 'lrr'; did you mean 'lr'?{more}"


@pytest.mark.parametrize("manifest", ["..", ".", "", "sub/manifest.json"])
def test_a_manifest_must_be_a_file_name_inside_themake_folder(manifest: str) -> None:
    from pydantic import ValidationError

    from vwbench.registry.schema import CheckpointPin

    with pytest.raises(ValidationError, match=f"manifest {manifest!r} must be a file name inside the checkpoint folder"):
        CheckpointPin(path="zoo/mini-clip", manifest=manifest)
    assert CheckpointPin(path="zoo/mini-clip", manifest="..json").pinned  # a name that merely starts with dots is a file name


@pytest.mark.parametrize(("betas", "ok"), [("[0.9, 1.0]", False), ("[1.0, 0.999]", False), ("[0.0, 0.999999]", True)])
def test_adam_betas_lie_in_the_half_open_unit_interval(tasks_copy: Path, betas: str, ok: bool) -> None:
    path = tasks_copy / "defaults.yaml"
    edit(path, "betas: [0.9, 0.999]", f"betas: {betas}")
    if ok:
        assert TaskRegistry.from_dir(tasks_copy).get("clip->clip", "coco").hyperparameters.betas == (0.0, 0.999999)
        return
    assert load_error(tasks_copy) == f"{path.resolve()}:{line_of(path, 'betas:')}: hyperparameters.betas: Adam betas must lie in [0, 1)"


def test_the_judge_must_be_a_classification_model(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "judge:\n  family: clip", "judge:\n  family: owlv2")
    # at the judge's own line (tier-wide checks were reported at the file's line 1)
    assert load_error(tasks_copy) == f"{path.resolve()}:{line_of(path, 'judge:')}: the judge must be a classification model"


def test_a_tier_model_of_another_family_is_reported_at_its_key(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "  owlv2:\n    family: owlv2\n    checkpoint: {path: zoo/mini-owlv2, manifest: manifest.json}\n    metric: map",
         "  owlv2:\n    family: clip\n    checkpoint: {path: zoo/mini-owlv2, manifest: manifest.json}\n    metric: classification_accuracy")
    assert load_error(tasks_copy) == f"{path.resolve()}:{line_of(path, '  owlv2:')}: models.owlv2 has family 'clip'"


# ---- checkpoints ---------------------------------------------------------------------------------


CKPT_FILES = {"config.json": b'{"a": 1}', "model.safetensors": b"\x01" * 64}


def test_a_manifest_written_in_upper_case_hex_verifies_and_reports_lower_case(tmp_path: Path) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    folder = make_folder(tmp_path / "ckpt", CKPT_FILES, {k: sha(v).upper() for k, v in CKPT_FILES.items()})
    resolved = resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    assert resolved.files == {k: sha(v) for k, v in CKPT_FILES.items()}


def test_an_unlisted_weights_file_is_refused_whatever_the_case_of_its_suffix(tmp_path: Path) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    folder = make_folder(tmp_path / "ckpt", CKPT_FILES, {k: sha(v) for k, v in CKPT_FILES.items()})
    (folder / "EXTRA.SafeTensors").write_bytes(b"\x02" * 8)
    with pytest.raises(UserError) as info:
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    assert str(info.value) == (
        f"checkpoint {folder}: weights file EXTRA.SafeTensors is not listed in manifest.json, so it cannot be checked; "
        "restore the manifest, or re-fetch the checkpoint"
    )


def test_a_hash_mismatch_says_both_digests_and_what_to_do(tmp_path: Path) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    manifest = {k: sha(v) for k, v in CKPT_FILES.items()}
    manifest["model.safetensors"] = "ab" * 32
    folder = make_folder(tmp_path / "ckpt", CKPT_FILES, manifest)
    with pytest.raises(UserError) as info:
        resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json"))
    actual = sha(CKPT_FILES["model.safetensors"])
    assert str(info.value) == (
        f"checkpoint {folder}: file model.safetensors has sha256 {actual[:12]}..., manifest.json says abababababab...; "
        "the checkpoint is corrupted or was modified: restore or re-fetch it"
    )


REV = "0123456789abcdef0123456789abcdef01234567"


def _local_dir_meta(folder: Path, rel: str, etag: str, age: float) -> None:
    """What `hf download --local-dir` records: commit, etag, the download's time (``age`` s
    after the file's mtime: negative when the file was modified after the download)."""
    meta = folder / ".cache" / "huggingface" / "download" / f"{rel}.metadata"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(f"{REV}\n\"{etag}\"\n{(folder / rel).stat().st_mtime + age}\n")


def test_a_local_dir_file_modified_after_its_download_is_hashed_not_trusted(tmp_path: Path, monkeypatch) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    monkeypatch.delenv("VWBENCH_WEIGHTS", raising=False)
    weights = tmp_path / "weights"
    folder = make_folder(weights / "org" / "model", CKPT_FILES, None)
    _local_dir_meta(folder, "model.safetensors", "f" * 64, age=-10)  # modified 10 s after the download
    _local_dir_meta(folder, "config.json", "e" * 64, age=0.5)  # within the 1 s slack: the (quoted) etag is trusted
    resolved = resolve_checkpoint(CheckpointPin(hf_id="org/model", revision=REV), weights)
    assert resolved.files == {"config.json": "e" * 64, "model.safetensors": sha(CKPT_FILES["model.safetensors"])}
    assert resolved.revision == REV and resolved.origin == "weights_dir"


def test_a_local_dir_file_replaced_with_its_old_mtime_is_hashed_not_trusted(tmp_path: Path, monkeypatch) -> None:
    """`cp -p` (or rsync -a, tar, unzip) of other weights keeps an mtime older than the download
    record, but not the ctime: the recorded etag no longer stands for the bytes."""
    import os

    from vwbench.registry import CheckpointPin, resolve_checkpoint

    monkeypatch.delenv("VWBENCH_WEIGHTS", raising=False)
    weights = tmp_path / "weights"
    folder = make_folder(weights / "org" / "model", CKPT_FILES, None)
    target = folder / "model.safetensors"
    old = target.stat().st_mtime - 100
    os.utime(target, (old, old))
    _local_dir_meta(folder, "model.safetensors", "f" * 64, age=50)  # recorded 50 s after the (old) mtime, i.e. 50 s ago
    target.write_bytes(b"\x07" * 64)
    os.utime(target, (old, old))  # what `cp -p` leaves: the old mtime; the ctime is now
    resolved = resolve_checkpoint(CheckpointPin(hf_id="org/model", revision=REV), weights)
    assert resolved.files["model.safetensors"] == sha(b"\x07" * 64)


def test_an_unpinned_local_dir_checkpoint_reports_the_commit_it_was_downloaded_at(tmp_path: Path) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    weights = tmp_path / "weights"
    folder = make_folder(weights / "org" / "model", CKPT_FILES, None)
    assert resolve_checkpoint(CheckpointPin(hf_id="org/model", revision="main"), weights).revision == "main"  # nothing recorded
    _local_dir_meta(folder, "model.safetensors", "f" * 64, age=5)
    resolved = resolve_checkpoint(CheckpointPin(hf_id="org/model", revision="main"), weights)
    assert resolved.revision == REV and resolved.files["model.safetensors"] == "f" * 64


def test_a_weights_dir_folder_with_a_manifest_is_verified_against_it(tmp_path: Path) -> None:
    from vwbench.registry import CheckpointPin, resolve_checkpoint

    weights = tmp_path / "weights"
    table = {k: sha(v) for k, v in CKPT_FILES.items()}
    folder = make_folder(weights / "org--model", CKPT_FILES, table)
    resolved = resolve_checkpoint(CheckpointPin(hf_id="org/model", revision=REV), weights)
    assert resolved.files == table and resolved.revision == REV and resolved.path == folder  # manifest.json itself is not a file of it
    (folder / "model.safetensors").write_bytes(b"\x03" * 64)
    with pytest.raises(UserError, match=r"file model\.safetensors has sha256 .* manifest\.json says"):
        resolve_checkpoint(CheckpointPin(hf_id="org/model", revision=REV), weights)
