import json

import pytest
import torch

from vwbench.errors import UserError
from vwbench.results import atomic_write_json, read_result
from vwbench.results.schema import SCHEMA_VERSION, RunResult
from vwbench.results.words_store import WordSet, load_wordset, save_wordset


def _result(**over):
    payload = dict(
        task="sd->owlv2", source="sd", target="owlv2", dataset="synth-coco", metric="map", value=0.5, ci95=(0.4, 0.6),
        per_concept={"circle": 0.5}, per_word=[{"concept": "circle", "trial": 0, "init_word": "circle", "map": 0.5}],
        transfer="lstsq", n_trials=1, steps=10, seed=0,
        provenance=dict(vwbench_version="0.1.0", git_commit=None, task_version=1, checkpoints=[], dataset_manifest_hash="x",
                        versions={"torch": "2"}, device="cpu", dtype="float32", wall_time_s={"train": 1.0}, created="2026-01-01T00:00:00+00:00"),
    )
    payload.update(over)
    return RunResult.model_validate(payload)


def test_result_round_trip(tmp_path):
    path = tmp_path / "r" / "x.json"
    atomic_write_json(path, _result().model_dump(mode="json"))
    assert read_result(path) == _result()
    assert read_result(path).provenance.machine == {}  # results written before the machine was kept
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp file left behind


def test_the_machine_is_kept_in_the_provenance(tmp_path):
    path = tmp_path / "x.json"
    result = _result()
    result.provenance.machine = {"cpu": "AMD EPYC", "torch_threads": 2}
    atomic_write_json(path, result.model_dump(mode="json"))
    assert read_result(path).provenance.machine == {"cpu": "AMD EPYC", "torch_threads": 2}


def test_torn_result_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, _result().model_dump(mode="json"))
    path.write_text(path.read_text()[:50])
    with pytest.raises(UserError, match="not a readable result file"):
        read_result(path)


def test_unknown_schema_version_and_bad_field_are_refused(tmp_path):
    path = tmp_path / "x.json"
    payload = _result().model_dump(mode="json")
    atomic_write_json(path, {**payload, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(UserError, match="schema version"):
        read_result(path)
    atomic_write_json(path, {**payload, "value": "high"})
    with pytest.raises(UserError, match="value"):
        read_result(path)


def test_full_disk_is_a_user_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    import os

    path = tmp_path / "x.json"
    atomic_write_json(path, {"old": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError, match="No space left"):
        atomic_write_json(path, {"new": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_words_round_trip_and_torn_file_is_ignored(tmp_path):
    words = WordSet(torch.randn(2, 4, 8), ["a", "b"], [0, 0], ["a", "b"], {"key": "k"})
    path = tmp_path / "w.safetensors"
    save_wordset(path, words)
    back = load_wordset(path)
    assert torch.equal(back.vectors, words.vectors) and back.concepts == ["a", "b"] and back.metadata == {"key": "k"}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert load_wordset(path) is None
    path.write_bytes(b"\x80\x04pickle-not-safetensors")
    assert load_wordset(path) is None
    assert load_wordset(tmp_path / "missing.safetensors") is None


def test_non_finite_words_are_not_reused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_wordset(path, WordSet(torch.full((1, 1, 2), float("nan")), ["a"], [0], ["a"], {}))
    assert load_wordset(path) is None


def test_a_file_set_has_one_writer_with_normal_permissions(tmp_path):
    """The all-or-nothing set writer lives beside the single-file one and shares its umask."""
    import os

    from vwbench.results import atomic

    mask = os.umask(0o022)
    try:
        atomic.write_file_set({tmp_path / "s" / "a.json": b"a", tmp_path / "s" / "b.png": b"b"})
    finally:
        os.umask(mask)
    assert {p.name: (p.read_bytes(), p.stat().st_mode & 0o777) for p in (tmp_path / "s").iterdir()} == {"a.json": (b"a", 0o644), "b.png": (b"b", 0o644)}
